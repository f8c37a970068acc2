"""The committed src/kafka/schemas_gen.c is what src/kafka/gen_schemas.py makes
from the Kafka message definitions (fails when one was changed without the other)."""
import os
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("BS_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def spec_dir():
    """../shared/spec next to the repository, or one level higher for a git worktree."""
    for rel in ("../shared/spec/kafka-messages", "../../shared/spec/kafka-messages"):
        d = os.path.normpath(os.path.join(SRC, rel))
        if os.path.isdir(d):
            return d
    return None


class SchemasGenTest(unittest.TestCase):
    def test_generated_file_is_current(self):
        spec = spec_dir()
        self.assertIsNotNone(spec, "kafka-messages spec directory not found next to " + SRC)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "schemas_gen.c")
            subprocess.run([sys.executable, os.path.join(SRC, "src/kafka/gen_schemas.py"), spec, out],
                           check=True, timeout=120)
            with open(out, encoding="utf-8") as f:
                fresh = f.read()
        with open(os.path.join(SRC, "src/kafka/schemas_gen.c"), encoding="utf-8") as f:
            committed = f.read()
        self.assertEqual(fresh, committed, "re-run src/kafka/gen_schemas.py (see docs/kafka-protocol.md)")


if __name__ == "__main__":
    unittest.main()

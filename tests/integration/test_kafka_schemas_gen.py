"""The committed src/kafka/schemas_gen.c is what src/kafka/gen_schemas.py makes from the
message definitions inside the pinned Apache Kafka release's kafka-clients jar (fails when
the pin, the jar or the generator changed without regenerating)."""
import os
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("BS_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GEN = os.path.join(SRC, "src", "kafka", "gen_schemas.py")
sys.path.insert(0, os.path.join(SRC, "src", "kafka"))
import gen_schemas  # noqa: E402


class SchemasGenTest(unittest.TestCase):
    def test_generated_file_is_current(self):
        jar = gen_schemas.pinned_jar()
        self.assertTrue(os.path.isfile(jar), jar + " is missing: run `make deps`")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "schemas_gen.c")
            subprocess.run([sys.executable, GEN, jar, out], check=True, timeout=120)
            with open(out, encoding="utf-8") as f:
                fresh = f.read()
        with open(os.path.join(SRC, "src/kafka/schemas_gen.c"), encoding="utf-8") as f:
            committed = f.read()
        self.assertIn(f"Apache Kafka {gen_schemas.pinned_version()} ", committed.splitlines()[1])
        self.assertEqual(fresh, committed, "re-run `python3 src/kafka/gen_schemas.py` (docs/kafka-protocol.md)")

    def test_every_endpoint_response_is_classified(self):
        """Each broker-served response that can hold Host/Port is either decoded and rewritten
        or named as holding non-broker endpoints; the generator refuses anything else."""
        schemas = gen_schemas.load_schemas(gen_schemas.read_release(gen_schemas.pinned_jar())[0])
        found = set(gen_schemas.endpoint_responses(schemas))
        classified = set(gen_schemas.BROKER_ENDPOINT_RESPONSES) | set(gen_schemas.OTHER_ENDPOINT_RESPONSES)
        self.assertLessEqual(found, classified)
        # the ones KIP-951 and KIP-932 added are among the rewritten
        for name in ("ProduceResponse", "FetchResponse", "ShareFetchResponse", "ShareAcknowledgeResponse",
                     "DescribeClusterResponse", "DescribeQuorumResponse"):
            self.assertIn(name, found)
            self.assertIn(name, gen_schemas.CODEC_MESSAGES)

    def test_unclassified_endpoint_response_stops_the_generator(self):
        """A release adding a response with Host/Port nobody classified fails generation."""
        texts, _ = gen_schemas.read_release(gen_schemas.pinned_jar())
        texts = dict(texts)
        texts["NewThingResponse.json"] = """{
          "apiKey": 9999, "type": "response", "name": "NewThingResponse",
          "validVersions": "0", "flexibleVersions": "0+",
          "fields": [ { "name": "Nodes", "type": "[]Node", "versions": "0+", "fields": [
            { "name": "NodeId", "type": "int32", "versions": "0+" },
            { "name": "Host", "type": "string", "versions": "0+" },
            { "name": "Port", "type": "int32", "versions": "0+" } ] } ] }"""
        texts["NewThingRequest.json"] = """{ "apiKey": 9999, "type": "request", "listeners": ["broker"],
          "name": "NewThingRequest", "validVersions": "0", "flexibleVersions": "0+", "fields": [] }"""
        with tempfile.TemporaryDirectory() as tmp:
            for fn, t in texts.items():
                with open(os.path.join(tmp, fn), "w", encoding="utf-8") as f:
                    f.write(t)
            r = subprocess.run([sys.executable, GEN, tmp, os.path.join(tmp, "out.c")],
                               capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("NewThingResponse can carry Host/Port", r.stderr)


if __name__ == "__main__":
    unittest.main()

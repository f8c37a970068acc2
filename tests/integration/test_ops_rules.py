"""The Prometheus alert rules in ops/prometheus (docs/operations.md, "Dashboards, alerts and
alarms") are valid (`promtool check rules`), and every alert has unit tests that pass
(`promtool test rules ops/prometheus/brokerside-alerts.test.yml`): at least one evaluation where
it fires and one where it does not. promtool comes with Debian's prometheus package (make deps).
That the metric names they use are exported is test_ops_metrics' job."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("BS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
RULES_DIR = os.path.join(SOURCE, "ops", "prometheus")
RULES = os.path.join(RULES_DIR, "brokerside-alerts.yml")
TESTS = os.path.join(RULES_DIR, "brokerside-alerts.test.yml")


def promtool(*args, cwd=None):
    return subprocess.run(["promtool"] + list(args), capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def alerts_of(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


class AlertRulesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("promtool"):
            raise RuntimeError("promtool not found: `make deps` installs Debian's prometheus "
                               "package, which ships it")

    def test_rules_are_valid(self):
        r = promtool("check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: %d rules found" % len(alerts_of(RULES)), r.stdout + r.stderr)

    def test_unit_tests_pass(self):
        r = promtool("test", "rules", os.path.basename(TESTS), cwd=RULES_DIR)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout + r.stderr)

    def test_every_alert_has_a_firing_and_a_quiet_case(self):
        with open(TESTS) as f:
            doc = yaml.safe_load(f)
        self.assertEqual(doc["rule_files"], [os.path.basename(RULES)])
        fires, quiet = set(), set()
        for t in doc["tests"]:
            for case in t.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
        alerts = alerts_of(RULES)
        self.assertEqual(len(alerts), len(set(alerts)), "alert names are unique")
        self.assertEqual(sorted(set(alerts) - fires), [], "alerts without a firing case")
        self.assertEqual(sorted(set(alerts) - quiet), [], "alerts without a quiet case")
        self.assertEqual(sorted((fires | quiet) - set(alerts)), [], "tests of unknown alerts")

    def test_a_broken_rule_is_caught(self):
        """The checks can fail: a rule file with a bad expression is refused, and the unit
        tests fail against rules whose threshold moved."""
        with tempfile.TemporaryDirectory() as d:
            with open(RULES) as f:
                text = f.read()
            bad = os.path.join(d, "bad.yml")
            with open(bad, "w") as f:
                f.write(text.replace("brokerside_audit_blocked == 1", "brokerside_audit_blocked =="))
            r = promtool("check", "rules", bad)
            self.assertNotEqual(r.returncode, 0)
            moved = text.replace("brokerside_spool_bytes / brokerside_spool_max_bytes > 0.95",
                                 "brokerside_spool_bytes / brokerside_spool_max_bytes > 0.97")
            self.assertNotEqual(moved, text)
            with open(os.path.join(d, os.path.basename(RULES)), "w") as f:
                f.write(moved)
            shutil.copy(TESTS, d)
            r = promtool("test", "rules", os.path.basename(TESTS), cwd=d)
            self.assertNotEqual(r.returncode, 0, "the unit tests did not notice a moved threshold")
            self.assertIn("BrokersideSpoolNearFull", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

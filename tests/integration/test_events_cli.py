"""CLI and start-up rules of the event path: `keygen`, encryption needing kafka listeners,
--check-config loading the audit signing key, and /status of the pipeline."""
import json
import os
import shutil
import signal
import stat
import subprocess
import unittest

import harness

REFUSAL = ('protocol "tcp" cannot encrypt records: with an "encryption" section every '
           'listener must be "kafka"')


class Cli(harness.DaemonTest):
    def test_keygen_creates_0600_and_refuses_overwrite(self):
        path = os.path.join(self.tmp, "master.key")
        r = harness.run_cli("keygen", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertGreater(st.st_size, 0)
        with open(path, "rb") as f:
            before = f.read()
        r = harness.run_cli("keygen", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn(path, r.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before, "an existing key must never be overwritten")
        r = harness.run_cli("keygen", os.path.join(self.tmp, "no-such-dir", "k"))
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "no-such-dir")))

    def test_help_names_the_subcommands(self):
        r = harness.run_cli("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("keygen FILE", r.stdout)
        self.assertIn("audit verify", r.stdout)
        r = harness.run_cli("audit")
        self.assertEqual(r.returncode, 2)
        r = harness.run_cli("audit", "verify")
        self.assertEqual(r.returncode, 2)

    def encryption_config(self):
        key = os.path.join(self.tmp, "master.key")
        self.assertEqual(harness.run_cli("keygen", key).returncode, 0)
        cfg = self.base_config(harness.free_port(), streams=("audit",))
        cfg["encryption"] = {"kms": {"type": "local", "key_file": key},
                             "topics": [{"match": "*", "key": "k1"}]}
        return cfg

    def test_encryption_with_a_tcp_listener_is_refused(self):
        d = self.daemon(self.encryption_config())  # base_config's listener is tcp
        r = harness.run_cli("--check-config", d.cfg_path)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(REFUSAL, r.stderr)
        d.start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=harness.WAIT_S), 1)
        self.assertIn(REFUSAL, d.log())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "spool")),
                         "a refused start must not open the spool")

    def test_encryption_with_kafka_listeners_starts(self):
        cfg = self.encryption_config()
        cfg["listeners"][0]["protocol"] = "kafka"
        d = self.daemon(cfg)
        r = harness.run_cli("--check-config", d.cfg_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.start()
        self.assertIn("local keyring", d.log())
        self.assertNotIn("encryption at rest is OFF", d.log())
        self.assertEqual(d.stop(), 0)

    def test_without_encryption_the_off_warning_is_logged(self):
        d = self.daemon(self.base_config(harness.free_port(), streams=()))
        d.start()
        self.assertIn("encryption at rest is OFF", d.log())
        self.assertEqual(d.stop(), 0)

    def test_check_config_loads_the_signing_key(self):
        key = harness.write_hmac_key(os.path.join(self.tmp, "audit.key"))
        cfg = self.base_config(harness.free_port(), streams=("audit",))
        cfg["audit"]["signing_key_file"] = key
        d = self.daemon(cfg)
        r = harness.run_cli("--check-config", d.cfg_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "spool")),
                         "--check-config opens nothing")
        # A key file that is not a key: caught by --check-config, not at the first digest.
        with open(key, "w") as f:
            f.write("not a key\n")
        r = harness.run_cli("--check-config", d.cfg_path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("audit.signing_key_file", r.stderr)
        self.assertNotIn("not a key", r.stderr + r.stdout)
        d.start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=harness.WAIT_S), 1)
        self.assertIn("audit.signing_key_file", d.log())

    def test_example_config_passes_check_config(self):
        # The shipped example, in a tree of its own: conf/ beside freshly made certs/dev
        # (with the master key) and var/, as a fresh checkout has them after `make demo`.
        root = os.path.join(self.tmp, "example")
        os.makedirs(os.path.join(root, "conf"))
        os.makedirs(os.path.join(root, "var"))
        shutil.copy(os.path.join(harness.SRC, "conf", "brokerside.json"), os.path.join(root, "conf"))
        certs = os.path.join(root, "certs", "dev")
        subprocess.run([os.path.join(harness.SRC, "certs", "make-dev-certs.sh"), certs],
                       check=True, stdout=subprocess.DEVNULL)
        r = harness.run_cli("keygen", os.path.join(certs, "master.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = harness.run_cli("--check-config", os.path.join(root, "conf", "brokerside.json"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_status_shows_spool_and_sinks(self):
        d = self.daemon(self.base_config(harness.free_port(), streams=("audit", "metrics")))
        d.start()
        st = harness.wait_for(lambda: (lambda s: s if s["sinks"][0]["delivered"] > 0 else None)(
            d.status()), "a delivered event in /status")
        self.assertEqual(st["spool"]["dir"], os.path.join(self.tmp, "spool"))
        self.assertGreater(st["spool"]["appended"], 0)
        sink = st["sinks"][0]
        self.assertEqual((sink["name"], sink["type"]), ("f", "file"))
        for k in ("lag_bytes", "delivered", "retried", "dead_lettered", "last_error"):
            self.assertIn(k, sink)
        self.assertIsNone(sink["last_error"])
        self.assertEqual(st["events"]["dropped"], {"audit": 0, "metrics": 0, "logs": 0})
        self.assertEqual(len(st["audit"]["chain_id"]), 32)
        self.assertFalse(st["audit"]["signed"])
        self.assertEqual(d.stop(), 0)

    def test_reload_applies_namespace_keeps_sinks(self):
        cfg = self.base_config(harness.free_port(), streams=("metrics",))
        cfg["metrics"]["namespace"] = "Before/Reload"
        d = self.daemon(cfg)
        d.start()
        path = os.path.join(self.tmp, "events", "metrics.ndjson")

        def namespaces():
            return {dr["Namespace"] for doc in harness.read_ndjson(path)
                    for dr in doc["_aws"]["CloudWatchMetrics"]}
        harness.wait_for(lambda: "Before/Reload" in namespaces(), "the first namespace")
        cfg["metrics"]["namespace"] = "After/Reload"
        cfg["sinks"]["g"] = {"type": "file", "dir": os.path.join(self.tmp, "events2")}
        cfg["metrics"]["sinks"] = ["f", "g"]
        with open(d.cfg_path, "w") as f:
            json.dump(cfg, f)
        d.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: "After/Reload" in namespaces(), "the reloaded namespace")
        self.assertIn("requires restart", d.log())
        self.assertEqual([s["name"] for s in d.status()["sinks"]], ["f"])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "events2")))
        self.assertEqual(d.stop(), 0)

    def test_second_sigterm_cuts_the_sink_flush_short(self):
        cfg = self.base_config(harness.free_port(), streams=("audit",))
        cfg["limits"]["shutdown_grace_s"] = 600  # longer than the harness waits
        cfg["aws"] = {"region": "eu-west-1", "max_attempts": 1, "connect_timeout_s": 1}
        cfg["sinks"]["dead"] = {"type": "cloudwatch_logs", "log_group": "g",
                                "endpoint": "http://127.0.0.1:%d" % harness.free_port()}
        cfg["audit"]["sinks"] = ["dead"]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="secret")
        env.pop("AWS_PROFILE", None)
        d = self.daemon(cfg)
        d.start(env=env)
        d.proc.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: "workers stopped" in d.log(), "the server's drain")
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.assertIn("flush cut short by a second signal", d.log())
        # What was not delivered is still in the spool for the next start.
        d.start(env=env)
        self.assertGreater(d.status()["sinks"][0]["lag_bytes"], 0)
        self.assertEqual(d.stop(signal.SIGKILL), -9)


if __name__ == "__main__":
    unittest.main()

"""The cloudtrail_lake sink end to end: a real sidecar auditing real Kafka 4.4.0 traffic to a
file sink and to CloudTrail Lake (tests/integration/cloudtrail_lake_server.py, SigV4 and the
service model checked). The file sink is the reference: every line it holds must reach the
Lake, stored under its eventID, byte for byte in additionalEventData.auditRecord.

- calls hold at most 100 events and 1 MB (both limits reached), and the trail read back from
  the Lake passes `brokerside audit verify`;
- per-event failures (Throttling) are resent, and only the failed ids;
- throttled and 5xx calls are retried (API errors counted by code);
- a permanent error (ChannelNotFound for a call, InvalidData for events) is dead-lettered and
  counted, and delivery goes on;
- the endpoint down (connections refused) then up again: nothing lost;
- the sidecar killed -9 while a call is in flight, then restarted: nothing lost, the events
  of that call sent again under the same ids (the store keeps one copy)."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from lake_common import LakeTest, chain_order, fields, verify  # noqa: E402

MAX_CALL_BYTES = 1000000


def metric(bs, name, **labels):
    return harness.metric(bs.metrics(), name, **labels) or 0


class CloudTrailLakeSink(LakeTest):

    def test_batches_within_both_limits_and_the_trail_verifies(self):
        # No age limit to speak of: a batch leaves when it is full (100 events or 1 MB),
        # whatever the speed of the machine; SIGTERM sends the rest.
        bs = self.start_brokerside(self.config(max_age_ms=3600000))
        # 250 small events: calls of 100; 60 events of ~30 KB of eventData: calls cut by 1 MB
        self.metadata_requests(250)
        self.metadata_requests(60, topics=40, tag="big")
        harness.wait_until(lambda: len(self.ep.state()["events"]) >= 250,
                           harness.START_TIMEOUT * 3, "the full batches in the Lake")
        # SIGTERM seals the chain; the last batch and the final digest reach the Lake too
        bs.stop()
        lines = self.wait_file_lines_in_lake("every audit line in the Lake", at_least=310)
        self.assertIn('"AuditDigest"', lines[-1])
        calls = self.ep.state()["calls"]
        self.assertTrue(all(len(c["ids"]) <= 100 and c["bytes"] <= MAX_CALL_BYTES
                            for c in calls), [(len(c["ids"]), c["bytes"]) for c in calls])
        self.assertIn(100, [len(c["ids"]) for c in calls])
        cut_by_size = [c for c in calls if len(c["ids"]) < 100 and c["bytes"] > 900000]
        self.assertTrue(cut_by_size, [(len(c["ids"]), c["bytes"]) for c in calls])
        self.assertFalse(os.path.exists(os.path.join(self.spool_dir, "deadletter", "lake.ndjson")))
        st = self.ep.state()
        self.assertEqual(st["resends"], 0)
        for e in st["events"]:
            self.assertEqual(json.loads(e["eventData"])["recipientAccountId"], "123456789012")
        back = chain_order(self.lake_records(st).values())
        self.assertEqual(len(back), len(lines))
        rc, out = verify(self.tmp, "lake-readback.ndjson", back, self.key)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"OK: %d line\(s\)" % len(lines))
        # and the check can fail: one edited byte in one read-back event
        i = len(back) // 2
        back[i] = back[i].replace('"Metadata"', '"Metadatb"', 1)
        rc, out = verify(self.tmp, "lake-tampered.ndjson", back, self.key)
        self.assertEqual(rc, 1, out)
        self.assertIn("edited", out)

    def test_partial_failure_resends_only_the_failed_ids(self):
        self.ep.rules({"event_error": "Throttling", "every": 3, "times": 3})
        bs = self.start_brokerside(self.config())
        self.metadata_requests(150)
        self.wait_file_lines_in_lake("every audit line in the Lake", at_least=150)
        st = self.ep.state()
        calls = st["calls"]
        failed = [i for c in calls for i in c.get("failed", [])]
        self.assertGreater(len(failed), 0)
        for k, c in enumerate(calls):
            ok = set(c["ids"]) - set(c.get("failed", []))
            later = [i for c2 in calls[k + 1:] for i in c2["ids"]]
            self.assertFalse(ok & set(later), "a delivered id was sent again")
            for i in c.get("failed", []):
                self.assertIn(i, later, "a failed id was not resent")
        ids = [e["id"] for e in st["events"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(st["resends"], 0)
        self.assertEqual(metric(bs, "brokerside_sink_failed_records_total", sink="lake",
                                code="Throttling"), len(failed))
        self.assertGreaterEqual(metric(bs, "brokerside_sink_events_retried_total", sink="lake"),
                                len(failed))
        self.assertEqual(metric(bs, "brokerside_sink_events_dead_lettered_total", sink="lake"), 0)

    def test_throttling_and_5xx_are_retried(self):
        self.ep.rules({"call_error": "ThrottlingException", "status": 400, "times": 3},
                      {"call_error": "InternalServerError", "status": 500, "times": 2},
                      {"call_error": "ServiceUnavailableException", "status": 503, "times": 1})
        bs = self.start_brokerside(self.config())
        self.metadata_requests(30)
        self.wait_file_lines_in_lake("every audit line in the Lake", at_least=30)
        api = "brokerside_sink_api_errors_total"
        self.assertEqual(metric(bs, api, sink="lake", api="PutAuditEvents",
                                code="ThrottlingException"), 3)
        self.assertEqual(metric(bs, api, sink="lake", api="PutAuditEvents",
                                code="InternalServerError"), 2)
        self.assertEqual(metric(bs, api, sink="lake", api="PutAuditEvents",
                                code="ServiceUnavailableException"), 1)
        self.assertGreater(metric(bs, "brokerside_sink_events_retried_total", sink="lake"), 0)
        self.assertEqual(metric(bs, "brokerside_sink_events_dead_lettered_total", sink="lake"), 0)
        self.assertEqual(self.ep.state()["resends"], 0)

    def test_permanent_errors_are_dead_lettered_and_counted(self):
        self.ep.rules({"call_error": "ChannelNotFound", "times": 1},
                      {"event_error": "InvalidData", "every": 1, "times": 1})
        bs = self.start_brokerside(self.config())
        self.metadata_requests(20)

        dlq = os.path.join(self.spool_dir, "deadletter", "lake.ndjson")

        def dead():
            if not os.path.exists(dlq):
                return []
            with open(dlq) as f:
                return [json.loads(ln) for ln in f.read().splitlines()]
        def reasons():
            return " ".join(d["reason"] for d in dead())
        # the first call is refused whole, every event of the second one individually
        harness.wait_until(lambda: "ChannelNotFound" in reasons(), harness.START_TIMEOUT * 3,
                           "the first call dead-lettered")
        self.metadata_requests(10, tag="mid")
        harness.wait_until(lambda: "InvalidData" in reasons(), harness.START_TIMEOUT * 3,
                           "the second call's events dead-lettered")
        self.metadata_requests(10, tag="after")
        harness.wait_until(lambda: len(self.ep.state()["events"]) > 0, harness.START_TIMEOUT,
                           "events delivered after the dead letters")
        calls = self.ep.state()["calls"]
        self.assertEqual(calls[0].get("error"), "ChannelNotFound")
        self.assertEqual(len(calls[1]["failed"]), len(calls[1]["ids"]))
        d = dead()
        self.assertEqual(len(d), len(calls[0]["ids"]) + len(calls[1]["ids"]))
        self.assertEqual(metric(bs, "brokerside_sink_events_dead_lettered_total", sink="lake"),
                         len(d))
        self.assertEqual(metric(bs, "brokerside_sink_api_errors_total", sink="lake",
                                api="PutAuditEvents", code="ChannelNotFound"), 1)
        self.assertEqual(metric(bs, "brokerside_sink_failed_records_total", sink="lake",
                                code="InvalidData"), len(calls[1]["ids"]))
        # nothing is lost: each line of the file sink is in the Lake or in the dead letters
        def accounted():
            stored = self.lake_records()
            dead_ids = {fields(x["event"])[0] for x in dead()}
            return all(fields(ln)[0] in stored or fields(ln)[0] in dead_ids
                       for ln in self.file_lines())
        harness.wait_until(accounted, harness.START_TIMEOUT * 3,
                           "every audit line in the Lake or dead-lettered")
        self.assertEqual(self.sink_status(bs)["dead_lettered"], len(d))

    def test_endpoint_down_then_up_loses_nothing(self):
        bs = self.start_brokerside(self.config())
        self.metadata_requests(20)
        self.wait_file_lines_in_lake("the first events in the Lake", at_least=20)
        self.ep.stop()  # SIGKILL: the port refuses connections
        retried = self.sink_status(bs)["retried"]
        self.metadata_requests(40, tag="down")
        harness.wait_until(lambda: self.sink_status(bs)["retried"] >= retried + 3,
                           harness.START_TIMEOUT * 2, "three retry rounds while it is down")
        st = self.sink_status(bs)
        self.assertGreater(st["lag_bytes"], 0)
        self.assertIn("PutAuditEvents", st["last_error"] or "")
        self.ep.start()  # same port, same store
        self.wait_file_lines_in_lake("every audit line in the Lake after the outage",
                                     at_least=60)
        self.assertEqual(metric(bs, "brokerside_sink_events_dead_lettered_total", sink="lake"), 0)

    def test_sidecar_killed_mid_flight_loses_nothing(self):
        self.ep.rules({"delay_s": 6, "times": 1})
        cfg = self.config()
        bs = self.start_brokerside(cfg)
        self.metadata_requests(40)
        harness.wait_until(lambda: any(c["delayed"] for c in self.ep.state()["calls"]),
                           harness.START_TIMEOUT * 2, "a call held by the endpoint")
        # the endpoint has stored that call's events; the sidecar has not heard back
        held = [c for c in self.ep.state()["calls"] if c["delayed"]][0]["ids"]
        bs.proc.send_signal(signal.SIGKILL)
        bs.proc.wait(30)
        bs2 = self.start_brokerside(cfg, name="brokerside-2")
        self.metadata_requests(20, tag="after")
        lines = self.wait_file_lines_in_lake("every audit line in the Lake after the restart",
                                             at_least=60)
        st = self.ep.state()
        ids = [e["id"] for e in st["events"]]
        self.assertEqual(len(ids), len(set(ids)))
        later = [i for c in st["calls"][st["calls"].index(
            [c for c in st["calls"] if c["delayed"]][0]) + 1:] for i in c["ids"]]
        self.assertTrue(set(held) <= set(later), "the held call's events were not sent again")
        self.assertGreaterEqual(st["resends"], len(held))
        self.assertEqual({fields(ln)[0] for ln in lines} - set(ids), set())
        self.assertEqual(metric(bs2, "brokerside_sink_events_dead_lettered_total", sink="lake"), 0)


if __name__ == "__main__":
    harness.main()

"""The Java client test program (tests/java, built by `make deps` into .cache/java/<version>/lib)
for the integration tests: client property files for TLS/mTLS/SASL through brokerside, and
scenario runs returning the program's result line.

    res = run_scenario(tmp, "produce", props, topic="t", codec="zstd")
    res["ok"], res["nodes"], ...

Each run is a fresh JVM (small heap, C1 only: the scenarios are short). Its stderr (the
client's WARN+ log, plus DEBUG of the classes named in `debug`) is kept in the returned
result under "_stderr" and in <tmp>/java-<scenario>-<n>.log.
"""
import glob
import itertools
import json
import os
import subprocess

import harness

_runs = itertools.count(1)


def kafka_version():
    """The Apache Kafka version tests/kafka/pom.xml pins."""
    import re
    with open(os.path.join(harness.SOURCE_DIR, "tests", "kafka", "pom.xml"), encoding="utf-8") as f:
        return re.search(r"<kafka\.version>([^<]+)</kafka\.version>", f.read()).group(1).strip()


def lib_dir():
    """Where tests/java/build.sh put the program and its class path."""
    cache = os.environ.get("BS_JAVA_CACHE") or os.path.join(harness.SOURCE_DIR, ".cache", "java")
    return os.path.join(cache, kafka_version(), "lib")


def available():
    """None when the program is built, else why not."""
    if not glob.glob(os.path.join(lib_dir(), "client-scenarios-*.jar")):
        return "the Java client program is not built in %s: run `make deps`" % lib_dir()
    return None


def write_props(path, bootstrap, certs=None, client_cert=False, sasl=None):
    """A client properties file: TLS to brokerside with the dev CA when `certs` is given (and a
    client certificate when client_cert), SASL (mechanism, user, password) when `sasl` is given."""
    p = {"bootstrap.servers": bootstrap, "client.dns.lookup": "use_all_dns_ips"}
    if certs:
        p["ssl.truststore.type"] = "PEM"
        p["ssl.truststore.location"] = certs["ca_crt"]
        p["ssl.endpoint.identification.algorithm"] = "https"
        if client_cert:
            pem = path + ".keystore.pem"
            with open(pem, "w") as out:
                for src in (certs["client_key"], certs["client_crt"]):
                    with open(src) as f:
                        out.write(f.read())
            os.chmod(pem, 0o600)
            p["ssl.keystore.type"] = "PEM"
            p["ssl.keystore.location"] = pem
    if sasl:
        mech, user, password = sasl
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mech == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        p["sasl.mechanism"] = mech
        p["sasl.jaas.config"] = '%s required username="%s" password="%s";' % (module, user, password)
        p["security.protocol"] = "SASL_SSL" if certs else "SASL_PLAINTEXT"
    else:
        p["security.protocol"] = "SSL" if certs else "PLAINTEXT"
    with open(path, "w") as f:
        for k, v in p.items():
            f.write("%s=%s\n" % (k, v.replace("\\", "\\\\")))
    return path


def start_scenario(test, scenario, props, debug=(), **opts):
    """Start a scenario in the background (a harness Proc registered for cleanup on `test`);
    returns (proc, stdout_path, stderr_path)."""
    n = next(_runs)
    out = os.path.join(test.tmp, "java-%s-%d.out" % (scenario, n))
    err = os.path.join(test.tmp, "java-%s-%d.log" % (scenario, n))
    argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:CICompilerCount=1", "-Xshare:auto"]
    argv += ["-Dorg.slf4j.simpleLogger.log.%s=debug" % c for c in debug]
    argv += ["-cp", os.path.join(lib_dir(), "*"), "brokerside.tests.ClientScenarios", scenario, props]
    argv += ["%s=%s" % (k.replace("_", "."), v) for k, v in opts.items()]
    test.logs.append(err)
    fout, ferr = open(out, "wb"), open(err, "wb")
    p = subprocess.Popen(argv, stdout=fout, stderr=ferr, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    fout.close()
    ferr.close()

    def cleanup():
        if p.poll() is None:
            p.kill()
            p.wait()
    test.addCleanup(cleanup)
    return p, out, err


def lines(path):
    """The JSON lines the program printed so far."""
    out = []
    with open(path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def finish(proc, out, err, timeout=300):
    """Wait for a started scenario; returns its result line (+ "_stderr", "_rc")."""
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "timeout"
    results = [l for l in lines(out) if l.get("event") == "result"]
    res = results[-1] if results else {"ok": False, "errors": ["no result line"]}
    with open(err, "rb") as f:
        res["_stderr"] = f.read().decode("utf-8", "replace")
    res["_rc"] = rc
    return res


def run_scenario(test, scenario, props, timeout=300, debug=(), **opts):
    """Run a scenario to its end; returns its result line (+ "_stderr", "_rc")."""
    return finish(*start_scenario(test, scenario, props, debug=debug, **opts), timeout=timeout)


def assert_ok(test, res, what=""):
    """Fail `test` with the program's own errors and the tail of its log unless ok."""
    if not res.get("ok") or res.get("_rc") != 0:
        test.fail("%s: Java scenario failed (rc %s): %s\n--- stderr tail:\n%s" % (
            what, res.get("_rc"), res.get("errors"), res.get("_stderr", "")[-4000:]))

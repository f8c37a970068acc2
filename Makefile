# Thin wrapper around CMake. `make demo` and `make test` do all set-up on a fresh Debian 12.
BUILD      ?= build
JOBS       ?= $(shell nproc)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZ_SECONDS ?= 8

# Every Debian package the build, demo, tests and benchmarks need.
DEB_PACKAGES := \
	build-essential cmake pkg-config clang \
	libssl-dev openssl \
	libev-dev \
	libcjson-dev \
	libcurl4-openssl-dev curl \
	zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev \
	librdkafka-dev kcat \
	python3 python3-kafka python3-confluent-kafka python3-snappy python3-lz4 python3-zstandard \
	python3-prometheus-client python3-yaml \
	prometheus \
	stunnel4 haproxy sslscan testssl.sh \
	procps iproute2 psmisc \
	openjdk-17-jdk-headless maven \
	help2man dpkg-dev fakeroot systemd

.PHONY: all deps build build-asan build-fuzz demo test test-unit fuzz-short bench bench-baselines package clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@# prometheus is here for promtool (ops/ alert rules). Its package enables prometheus.service
	@# (and prometheus-node-exporter, a Recommends) under systemd: no server belongs on a test machine
	@-[ -d /run/systemd/system ] && for u in prometheus prometheus-node-exporter; do \
	  systemctl is-enabled --quiet $$u 2>/dev/null && $(SUDO) systemctl disable --now $$u >/dev/null 2>&1; done; true
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	@# npm ls fails when any package pinned in tests/package.json is missing or at another version
	@cd tests && { npm ls --depth=0 >/dev/null 2>&1 || npm install --no-audit --no-fund --silent; }
	@# the pinned Apache Kafka (tests/kafka/pom.xml) into .cache/kafka/: no network when already there
	@./tests/kafka/fetch.sh >/dev/null
	@# the Java client test program (tests/java) against that release into .cache/java/
	@./tests/java/build.sh >/dev/null
	@# moto_server and boto3 (AWS integration tests) come with the machine image's pyenv python3, not apt: say so clearly if absent
	@{ command -v moto_server || ls $$HOME/.pyenv/shims/moto_server; } >/dev/null 2>&1 || { echo "deps: moto_server not found on PATH or in ~/.pyenv/shims (needs a python3 with moto[server] and boto3)" >&2; exit 1; }

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	CC=clang cmake -S . -B build-asan -DBS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-asan -j $(JOBS)

build-fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DBS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-fuzz -j $(JOBS)

demo: build
	./tests/demo.sh $(BUILD)

# A short fuzz run, the unit tests under ASan+UBSan, then every test (its summary ends the output).
test: build build-asan
	$(MAKE) fuzz-short
	cd build-asan && ctest -L unit --output-on-failure -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

fuzz-short: build-fuzz
	./tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

bench: build bench-baselines
	./tests/bench/run.sh $(BUILD)

# The Debian package (packaging/package.cmake): $(BUILD)/package/brokerside_<version>_<arch>.deb
package: build
	cd $(BUILD) && cpack -G DEB
	@ls -1 $(BUILD)/package/*.deb

# Peers brokerside is measured against that only the benchmarks use (never `make deps`): Kroxylicious
# (Maven, into .cache/kroxylicious; no network once there). Without it, part kafka-real reports the
# Kroxylicious rows as not measured and says why.
bench-baselines:
	@./tests/bench/kroxylicious/fetch.sh >/dev/null || echo "bench: Kroxylicious could not be fetched; part kafka-real will not measure it" >&2

clean:
	rm -rf $(BUILD) build-asan build-fuzz

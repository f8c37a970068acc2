/*
 * KroxyliciousLauncher - runs Kroxylicious (the benchmark baseline of `make bench` part
 * kafka-real) from its YAML configuration file, as the kroxylicious-app distribution would.
 *
 *   java -cp '<cache>/libs/*' brokerside.bench.KroxyliciousLauncher CONFIG.yaml
 *
 * Parses CONFIG.yaml with Kroxylicious' own ConfigParser (which is also the registry of the
 * filter and KMS plugins on the class path), starts KafkaProxy with the default feature set,
 * prints "kroxylicious-launcher: started" on stdout once every gateway listens, and serves
 * until SIGTERM/SIGINT, which shuts the proxy down. Exit status 1, with the error on stderr,
 * when the file is unreadable or the configuration is rejected.
 */
package brokerside.bench;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.config.Configuration;
import io.kroxylicious.proxy.internal.config.Features;

public final class KroxyliciousLauncher {
    private KroxyliciousLauncher() {
    }

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: KroxyliciousLauncher CONFIG.yaml");
            System.exit(2);
        }
        ConfigParser parser = new ConfigParser();
        Configuration config;
        try (InputStream in = Files.newInputStream(Path.of(args[0]))) {
            config = parser.parseConfiguration(in);
        }
        catch (Exception e) {
            System.err.println("kroxylicious-launcher: cannot load " + args[0] + ": " + e);
            System.exit(1);
            return;
        }
        try {
            KafkaProxy proxy = new KafkaProxy(parser, config, Features.defaultFeatures());
            proxy.startup();
            Runtime.getRuntime().addShutdownHook(new Thread(proxy::shutdown, "launcher-shutdown"));
            System.out.println("kroxylicious-launcher: started");
            System.out.flush();
            proxy.block();
        }
        catch (Exception e) {
            System.err.println("kroxylicious-launcher: proxy failed: " + e);
            e.printStackTrace();
            System.exit(1);
        }
    }
}

// The last step of a Kafka upgrade (docs/operations.md, "Upgrading Kafka 3.9 -> 4.x"):
// raise metadata.version to the highest level the running release supports, as
// `kafka-features.sh upgrade --metadata <the new release>` does. Other features (group,
// share, transaction, kraft versions) are opt-in behaviour changes, left as they are. Run by
// streams/kafka/broker_features.py with the broker's own jars on the class path:
//   java -cp 'libs/*' FinalizeFeatures.java HOST:PORT [--dry-run]
// Prints one line per feature: "<name> <finalized before> <finalized after> <supported max>".
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;

public class FinalizeFeatures {
    static final String METADATA = "metadata.version";

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        boolean dryRun = args.length > 1 && args[1].equals("--dry-run");
        try (Admin admin = Admin.create(props)) {
            FeatureMetadata before = admin.describeFeatures().featureMetadata().get();
            Map<String, FeatureUpdate> updates = new HashMap<>();
            SupportedVersionRange supported = before.supportedFeatures().get(METADATA);
            FinalizedVersionRange fin = before.finalizedFeatures().get(METADATA);
            short target = supported.maxVersion();
            if (fin == null || target > fin.maxVersionLevel()) {
                updates.put(METADATA, new FeatureUpdate(target, FeatureUpdate.UpgradeType.UPGRADE));
                admin.updateFeatures(updates, new UpdateFeaturesOptions().validateOnly(dryRun))
                        .all().get();
            }
            // The brokers' metadata caches learn the new level shortly after the controller
            // commits it: wait for it (at most 30 s) so the levels printed are the real ones.
            FeatureMetadata after = admin.describeFeatures().featureMetadata().get();
            long deadline = System.currentTimeMillis() + 30_000;
            while (!dryRun && System.currentTimeMillis() < deadline
                    && after.finalizedFeatures().get(METADATA).maxVersionLevel() < target) {
                Thread.sleep(200);
                after = admin.describeFeatures().featureMetadata().get();
            }
            for (Map.Entry<String, SupportedVersionRange> e : before.supportedFeatures().entrySet()) {
                FinalizedVersionRange b = before.finalizedFeatures().get(e.getKey());
                FinalizedVersionRange a = after.finalizedFeatures().get(e.getKey());
                System.out.println(e.getKey() + " " + (b == null ? 0 : b.maxVersionLevel()) + " "
                        + (a == null ? 0 : a.maxVersionLevel()) + " " + e.getValue().maxVersion());
            }
        }
    }
}

package io.moeserve.helm;

import static io.moeserve.helm.Charts.env;
import static io.moeserve.helm.Charts.named;
import static io.moeserve.helm.Charts.ofKind;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.marcnuri.helm.LintResult;
import io.kubernetes.client.custom.Quantity;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The chart with every example values file: lint --strict, template, and every rendered object valid against the
 * Kubernetes API model (unknown fields are errors), kubernetes-models / KEDA / Prometheus Operator types and the
 * strict CRD and adapter shapes; plus what each example is for.
 */
class ChartRenderTest {
    @TempDir
    Path work;

    static List<String> examples() {
        List<String> all = new ArrayList<>(Charts.examples());
        all.addFirst("(defaults)");
        return all;
    }

    static Path values(String example) {
        return example.equals("(defaults)") ? null : Charts.example(example);
    }

    @Test
    void theExamplesCoverWhatTheIssueAsks() {
        assertTrue(Charts.examples().containsAll(List.of("cpu-only", "gpu", "hpa", "keda", "many-groups", "autoscaling-off",
                "gpt-oss-20b", "glm-4.5-air")), Charts.examples().toString());
    }

    @ParameterizedTest(name = "lint --strict {0}")
    @MethodSource("examples")
    void lintsStrictly(String example) throws Exception {
        LintResult r = Charts.lint(values(example), work);
        assertFalse(r.isFailed(), String.join("\n", r.getMessages()));
        for (String m : r.getMessages()) assertFalse(m.contains("[ERROR]") || m.contains("[WARNING]"), m);
    }

    @ParameterizedTest(name = "every object of {0} is valid")
    @MethodSource("examples")
    void everyRenderedObjectIsValid(String example) throws Exception {
        List<JsonNode> docs = Charts.renderWithTestHooks(values(example), work);
        assertEquals(1, ofKind(docs, "Pod").size(), "the helm test Pod is validated too");
        assertTrue(docs.size() > 5, "rendered " + docs.size() + " objects");
        List<String> problems = new ArrayList<>();
        for (JsonNode d : docs) problems.addAll(KubeSchemas.problems(d));
        JsonNode adapter = adapterConfig(docs);
        Tools.Result node = Tools.nodeValidate(docs, adapter, work);
        if (node.exitCode() != 0) problems.addAll(Tools.lines(node.output()));
        assertEquals(List.of(), problems);
    }

    static JsonNode adapterConfig(List<JsonNode> docs) throws Exception {
        for (JsonNode cm : ofKind(docs, "ConfigMap")) {
            if (cm.path("metadata").path("name").asText().endsWith("-adapter-rules")) {
                return Charts.YAML.readTree(cm.path("data").path("config.yaml").asText());
            }
        }
        return null;
    }

    @Test
    void aTypoedFieldIsCaughtByEveryValidator() throws Exception {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("keda"));
        JsonNode dep = named(docs, "Deployment", "moe-moe-serve-expert-g0").deepCopy();
        ((ObjectNode) dep.path("spec").path("template").path("spec").path("containers").get(0)).put("imagePullPolicyy", "Always");
        assertTrue(KubeSchemas.problems(dep).toString().contains("imagePullPolicyy"), KubeSchemas.problems(dep).toString());
        JsonNode hpaBehaviour = named(docs, "ScaledObject", "moe-moe-serve-expert-g0").deepCopy();
        JsonNode scaleUp = hpaBehaviour.path("spec").path("advanced").path("horizontalPodAutoscalerConfig").path("behavior").path("scaleUp");
        ((ObjectNode) scaleUp).put("stabilisationWindowSeconds", 0);
        assertTrue(KubeSchemas.problems(hpaBehaviour).toString().contains("stabilisationWindowSeconds"));
        JsonNode so = named(docs, "ScaledObject", "moe-moe-serve-expert-g0").deepCopy();
        ((ObjectNode) so.path("spec")).put("minReplicas", 1);
        ((ObjectNode) so.path("spec").path("triggers").get(0).path("metadata")).put("treshold", "1");
        JsonNode wrongType = named(docs, "Service", "moe-moe-serve-gateway").deepCopy();
        ((ObjectNode) wrongType.path("spec").path("ports").get(0)).put("port", "eighty");
        Tools.Result r = Tools.nodeValidate(List.of(so, wrongType),
                Charts.YAML.readTree("rules: [{seriesQuery: 'x', resources: {}, name: {as: y}, metricsQuery: q, seriesQuerry: z}]"), work);
        assertNotEquals(0, r.exitCode());
        assertTrue(r.output().contains("'minReplicas'") && r.output().contains("'treshold'") && r.output().contains("'seriesQuerry'")
                && r.output().contains("port must be integer"), r.output());
    }

    @Test
    void defaultsServeEveryExpertFromOneGroup() {
        List<JsonNode> docs = Charts.renderDocs(null);
        String map = named(docs, "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(map.contains("moe.router.experts.groups.all.hosts=*\n"), map);
        assertEquals(1, ofKind(docs, "HorizontalPodAutoscaler").size());
    }

    /** Ping-pong, the busy-poll and prefix caching reach the router's properties only when they differ from the router's defaults. */
    @Test
    void microBatchingSettingsReachTheRouterOnlyWhenSet() throws Exception {
        String off = named(Charts.renderDocs(null), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertFalse(off.contains("micro-batch") || off.contains("spin-wait") || off.contains("prefix-caching"), off);
        Path values = Files.writeString(work.resolve("micro.yaml"), "router:\n  microBatches: 2\n  spinWaitMicros: 50\n  prefixCaching: false\n");
        String on = named(Charts.renderDocs(values), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(on.contains("moe.router.experts.micro-batches=2\n") && on.contains("moe.router.experts.spin-wait-micros=50\n"), on);
        assertFalse(on.contains("micro-batch-min-tokens"), on);
        assertTrue(on.contains("moe.router.prefix-caching.enabled=false\n"), on);
    }

    /**
     * The chart's expert transport is the router's default (read from RouterSettings' source, which this module does
     * not otherwise depend on), and reaches the router's properties only when set to the other one.
     */
    @Test
    void theExpertTransportIsTheRoutersDefaultAndWrittenOnlyWhenItDiffers() throws Exception {
        Path source = Charts.helmDir().getParent().resolve("router-service/src/main/java/io/moeserve/router/RouterSettings.java");
        String settings = Files.readString(source);
        java.util.regex.Matcher m = Pattern.compile("@WithDefault\\(\"([^\"]*)\"\\)\\s+Transport transport\\(\\)").matcher(settings);
        assertTrue(m.find(), "RouterSettings.Experts.transport() with a @WithDefault");
        JsonNode router = Charts.YAML.readTree(Charts.chart().resolve("values.yaml").toFile()).path("router");
        assertEquals(m.group(1), router.path("expertTransport").asText(), "the chart's default is the router's");
        String byDefault = named(Charts.renderDocs(null), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties")
                .asText();
        assertFalse(byDefault.contains("moe.router.experts.transport="), byDefault);
        String other = m.group(1).equals("unary") ? "stream" : "unary";
        Path values = Files.writeString(work.resolve("transport.yaml"), "router:\n  expertTransport: " + other + "\n");
        String set = named(Charts.renderDocs(values), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(set.contains("moe.router.experts.transport=" + other + "\n"), set);
    }

    /** The KV cache dtype reaches the router's properties only when it is not the router's default, f32. */
    @Test
    void theKvCacheDtypeReachesTheRouterOnlyWhenBf16() throws Exception {
        Path source = Charts.helmDir().getParent().resolve("router-service/src/main/java/io/moeserve/router/RouterSettings.java");
        assertTrue(Pattern.compile("@WithDefault\\(\"f32\"\\)\\s+String kvCacheDtype\\(\\)").matcher(Files.readString(source)).find(),
                "RouterSettings.Batching.kvCacheDtype() defaults to f32");
        JsonNode router = Charts.YAML.readTree(Charts.chart().resolve("values.yaml").toFile()).path("router");
        assertEquals("f32", router.path("kvCacheDtype").asText());
        String byDefault = named(Charts.renderDocs(null), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties")
                .asText();
        assertFalse(byDefault.contains("kv-cache-dtype"), byDefault);
        Path values = Files.writeString(work.resolve("kv.yaml"), "router:\n  kvCacheDtype: bf16\n");
        String set = named(Charts.renderDocs(values), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(set.contains("moe.router.batching.kv-cache-dtype=bf16\n"), set);
    }

    /** Expert skipping is off unless set: the router's properties name it only then. */
    @Test
    void expertSkippingReachesTheRouterOnlyWhenSet() throws Exception {
        String off = named(Charts.renderDocs(null), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertFalse(off.contains("expert-skipping"), off);
        Path values = Files.writeString(work.resolve("skipping.yaml"), "router:\n  expertSkipping: {threshold: 0.4}\n");
        String on = named(Charts.renderDocs(values), "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(on.contains("moe.router.expert-skipping.threshold=0.4\nmoe.router.expert-skipping.protect-fraction=0.02\n"), on);
    }

    /** No single router: two by default, a PDB keeping one, and the gateway balancing over the headless Service's addresses. */
    @Test
    void twoRoutersBehindAHeadlessServiceThatTheGatewayResolves() {
        List<JsonNode> docs = Charts.renderDocs(null);
        assertEquals(2, named(docs, "Deployment", "moe-moe-serve-router").path("spec").path("replicas").asInt());
        JsonNode pdb = named(docs, "PodDisruptionBudget", "moe-moe-serve-router").path("spec");
        assertEquals(1, pdb.path("minAvailable").asInt());
        assertFalse(pdb.has("maxUnavailable"));
        JsonNode headless = named(docs, "Service", "moe-moe-serve-router-headless").path("spec");
        assertEquals("None", headless.path("clusterIP").asText());
        assertEquals("router", headless.path("selector").path("app.kubernetes.io/component").asText());
        assertEquals(9000, headless.path("ports").get(0).path("port").asInt());
        JsonNode gw = named(docs, "Deployment", "moe-moe-serve-gateway").path("spec").path("template").path("spec").path("containers").get(0);
        assertEquals("dns:///moe-moe-serve-router-headless.serving.svc.cluster.local:9000",
                env(gw, "MOE_GATEWAY_ROUTER_TARGETS").path("value").asText());
        assertTrue(ofKind(docs, "HorizontalPodAutoscaler").stream()
                .noneMatch(h -> h.path("metadata").path("name").asText().endsWith("-router")), "router autoscaling is off by default");
    }

    /** router.autoscaling scales the routers on their queue depth, through prometheus-adapter or KEDA as the groups. */
    @Test
    void routerAutoscalingFollowsTheQueueDepth() {
        List<JsonNode> hpa = Charts.documents(Charts.render(null, Map.of("router.autoscaling.enabled", true)));
        assertFalse(named(hpa, "Deployment", "moe-moe-serve-router").path("spec").has("replicas"), "the HPA owns the count");
        JsonNode h = named(hpa, "HorizontalPodAutoscaler", "moe-moe-serve-router").path("spec");
        assertEquals("moe-moe-serve-router", h.path("scaleTargetRef").path("name").asText());
        assertEquals(2, h.path("minReplicas").asInt());
        JsonNode metric = h.path("metrics").get(0).path("pods");
        assertEquals("moe_router_waiting_sequences", metric.path("metric").path("name").asText());
        assertEquals("4000m", metric.path("target").path("averageValue").asText());
        List<JsonNode> keda = Charts.documents(Charts.render(null, Map.of("router.autoscaling.enabled", true,
                "autoscaling.engine", "keda")));
        JsonNode trigger = named(keda, "ScaledObject", "moe-moe-serve-router").path("spec").path("triggers").get(0);
        assertEquals("sum(avg_over_time(moe_router_sequences{namespace=\"serving\",state=\"waiting\"}[1m]))",
                trigger.path("metadata").path("query").asText());
        assertThrows(Exception.class, () -> Charts.render(null, Map.of("router.autoscaling.enabled", true,
                "router.autoscaling.minReplicas", 5, "router.autoscaling.maxReplicas", 3)));
    }

    /** One value puts the Secret into every pod, mounted where the services look, and turns TLS on in each. */
    @Test
    void tlsMountsTheSecretAndTurnsItOnInEveryService() {
        String plain = Charts.render(null, Map.of());
        assertFalse(plain.contains("MOE_TLS_") || plain.contains("/etc/moe-serve/tls"), "off by default: the render is unchanged");
        List<JsonNode> docs = Charts.documents(Charts.render(null, Map.of("tls.enabled", true, "tls.secretName", "moe-internal-tls",
                "tls.mutual", true)));
        List<JsonNode> deployments = ofKind(docs, "Deployment");
        assertEquals(3, deployments.size(), "gateway, router and the one expert group");
        for (JsonNode d : deployments) {
            String name = d.path("metadata").path("name").asText();
            JsonNode pod = d.path("spec").path("template").path("spec");
            JsonNode volume = null;
            for (JsonNode v : pod.path("volumes")) if (v.path("name").asText().equals("tls")) volume = v;
            assertTrue(volume != null, name + ": no tls volume");
            assertEquals("moe-internal-tls", volume.path("secret").path("secretName").asText(), name);
            JsonNode container = pod.path("containers").get(0);
            JsonNode mount = null;
            for (JsonNode m : container.path("volumeMounts")) if (m.path("name").asText().equals("tls")) mount = m;
            assertTrue(mount != null, name + ": no tls mount");
            assertEquals("/etc/moe-serve/tls", mount.path("mountPath").asText(), name + ": where moe.tls.* points by default");
            assertTrue(mount.path("readOnly").asBoolean(), name);
            assertFalse(mount.has("subPath"), name + ": a subPath mount would never see a renewed certificate");
            assertEquals("true", env(container, "MOE_TLS_ENABLED").path("value").asText(), name);
            assertEquals("true", env(container, "MOE_TLS_MUTUAL").path("value").asText(), name);
            assertEquals("1m", env(container, "MOE_TLS_RELOAD_PERIOD").path("value").asText(), name);
        }
    }

    @Test
    void cpuOnly() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("cpu-only"));
        assertEquals(4 + 2, ofKind(docs, "Deployment").size(), "4 expert groups, gateway, router");
        assertEquals(4, ofKind(docs, "HorizontalPodAutoscaler").size());
        assertFalse(Charts.render(Charts.example("cpu-only"), java.util.Map.of()).contains("nvidia.com/gpu"));
        JsonNode pod = named(docs, "Deployment", "moe-moe-serve-expert-g2").path("spec").path("template").path("spec");
        assertEquals("moe-models", pod.path("volumes").get(1).path("persistentVolumeClaim").path("claimName").asText());
        JsonNode c = pod.path("containers").get(0);
        assertEquals("*:32-47", env(c, "MOE_EXPERT_HOSTS").path("value").asText());
        assertEquals("g2", env(c, "MOE_EXPERT_GROUP").path("value").asText());
        assertEquals("/models/olmoe-1b-7b", env(c, "MOE_MODEL_PATH").path("value").asText());
        assertEquals("cpu", env(c, "MOE_EXPERT_BACKEND").path("value").asText());
        JsonNode gw = named(docs, "Deployment", "moe-moe-serve-gateway").path("spec").path("template").path("spec").path("containers").get(0);
        assertEquals("moe-moe-serve-api-keys", env(gw, "MOE_GATEWAY_API_KEYS").path("valueFrom").path("secretKeyRef").path("name").asText());
        assertEquals("moe-moe-serve-router.serving.svc.cluster.local", env(gw, "QUARKUS_GRPC_CLIENTS_ROUTER_HOST").path("value").asText());
        named(docs, "Secret", "moe-moe-serve-api-keys");
    }

    @Test
    void gpu() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("gpu"));
        JsonNode pod = named(docs, "Deployment", "moe-moe-serve-expert-g1").path("spec").path("template").path("spec");
        JsonNode c = pod.path("containers").get(0);
        assertEquals("1", c.path("resources").path("limits").path("nvidia.com/gpu").asText());
        assertEquals("auto", env(c, "MOE_EXPERT_BACKEND").path("value").asText());
        assertEquals("nvidia", pod.path("runtimeClassName").asText());
        assertEquals("nvidia.com/gpu", pod.path("tolerations").get(0).path("key").asText());
        assertEquals("NVIDIA-H100-80GB-HBM3", pod.path("nodeSelector").path("nvidia.com/gpu.product").asText());
        assertTrue(c.path("image").asText().startsWith("moe-serve/expert-service-gpu:"));
        JsonNode init = pod.path("initContainers").get(0);
        assertEquals("fetch-model", init.path("name").asText());
        assertEquals("hub-token", env(init, "HF_TOKEN").path("valueFrom").path("secretKeyRef").path("name").asText());
        assertEquals("Qwen/Qwen1.5-MoE-A2.7B", env(init, "MOE_HUB_REPO").path("value").asText());
        assertEquals("40Gi", pod.path("volumes").get(1).path("emptyDir").path("sizeLimit").asText());
        assertTrue(ofKind(docs, "Secret").stream().noneMatch(s -> s.path("metadata").path("name").asText().contains("hub-token")),
                "existing Secret used");
        JsonNode np = named(docs, "NetworkPolicy", "moe-moe-serve-experts");
        assertTrue(np.path("spec").path("egress").toString().contains("443"), "the init step may reach the hub");
    }

    @Test
    void aGroupOverridingQuantizeRendersItsSettings() {
        List<JsonNode> docs = Charts.documents(Charts.render(null, Map.of(
                "expertGroups.plain.hosts", "*:0-3",
                "expertGroups.blocks.hosts", "*:4-7", "expertGroups.blocks.quantize", "fp8",
                "expertGroups.narrow.hosts", "*:8-11", "expertGroups.narrow.quantize", "int8", "expertGroups.narrow.quantizeGroupSize", 64,
                "expertGroups.oss.hosts", "*:12-15", "expertGroups.oss.quantize", "mxfp4")));
        JsonNode plain = expertContainer(docs, "plain");
        assertFalse(hasEnv(plain, "MOE_EXPERT_QUANTIZE") || hasEnv(plain, "MOE_EXPERT_QUANTIZE_GROUP_SIZE"), "none: the pod's default, not rendered");
        JsonNode blocks = expertContainer(docs, "blocks");
        assertEquals("fp8", env(blocks, "MOE_EXPERT_QUANTIZE").path("value").asText());
        assertFalse(hasEnv(blocks, "MOE_EXPERT_QUANTIZE_GROUP_SIZE"), "fp8's blocks are 128x128 whatever the group size");
        JsonNode narrow = expertContainer(docs, "narrow");
        assertEquals("int8", env(narrow, "MOE_EXPERT_QUANTIZE").path("value").asText());
        assertEquals("64", env(narrow, "MOE_EXPERT_QUANTIZE_GROUP_SIZE").path("value").asText());
        JsonNode oss = expertContainer(docs, "oss");
        assertEquals("mxfp4", env(oss, "MOE_EXPERT_QUANTIZE").path("value").asText());
        assertFalse(hasEnv(oss, "MOE_EXPERT_QUANTIZE_GROUP_SIZE"), "MXFP4's groups are 32 columns by definition");

        List<JsonNode> chartWide = Charts.documents(Charts.render(null, Map.of("expertDefaults.quantize", "int4",
                "expertGroups.g0.hosts", "*:0-7", "expertGroups.g1.hosts", "*:8-15", "expertGroups.g1.quantize", "none")));
        assertEquals("int4", env(expertContainer(chartWide, "g0"), "MOE_EXPERT_QUANTIZE").path("value").asText());
        assertEquals("128", env(expertContainer(chartWide, "g0"), "MOE_EXPERT_QUANTIZE_GROUP_SIZE").path("value").asText(),
                "the pod's default group size");
        assertFalse(hasEnv(expertContainer(chartWide, "g1"), "MOE_EXPERT_QUANTIZE"), "a group turns the chart-wide default off");
    }

    /** openai/gpt-oss-20b as shipped: MXFP4 experts served as they are, two groups of 16, the checkpoint from the hub. */
    @Test
    void gptOss20b() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("gpt-oss-20b"));
        assertEquals(2 + 2, ofKind(docs, "Deployment").size(), "2 expert groups, gateway, router");
        String map = named(docs, "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(map.contains("groups.g0.hosts=*:0-15\n") && map.contains("groups.g1.hosts=*:16-31\n"), map);
        JsonNode pod = named(docs, "Deployment", "moe-moe-serve-expert-g1").path("spec").path("template").path("spec");
        JsonNode c = pod.path("containers").get(0);
        assertEquals("cpu", env(c, "MOE_EXPERT_BACKEND").path("value").asText());
        assertFalse(hasEnv(c, "MOE_EXPERT_QUANTIZE"), "the MXFP4 checkpoint is served as it ships");
        JsonNode init = pod.path("initContainers").get(0);
        assertEquals("openai/gpt-oss-20b", env(init, "MOE_HUB_REPO").path("value").asText());
        List<String> patterns = List.of(env(init, "MOE_HUB_ALLOW").path("value").asText().split(","));
        assertTrue(patterns.containsAll(List.of("config.json", "model-*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                "tokenizer_config.json", "chat_template.jinja")), patterns.toString());
        assertTrue(hubMatches("*.safetensors", "original/model.safetensors"), "the default pattern would");
        for (String p : patterns) assertFalse(hubMatches(p, "original/model.safetensors"), p + " fetches OpenAI's original/ copy of the weights too");
        // 24 layers x 16 experts of gate_up (2·2880 x 2880) and down (2880 x 2880) at 4.25 bits (MXFP4 codes and scales),
        // and their BF16 biases
        long experts = 24L * 16 * (mxfp4Bytes(2 * 2880, 2880) + mxfp4Bytes(2880, 2880) + (2 * 2880 + 2880) * 2);
        assertMemoryCovers(c, experts, "gpt-oss-20b g1");
    }

    /** GLM-4.5-Air in BF16: eight groups of 16 experts, half of them quantizing to int4 at start, each sized for its format. */
    @Test
    void glm45Air() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("glm-4.5-air"));
        assertEquals(8 + 2, ofKind(docs, "Deployment").size(), "8 expert groups, gateway, router");
        String map = named(docs, "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        long perExpertWeights = 3L * 4096 * 1408;
        int int4Groups = 0;
        for (int g = 0; g < 8; g++) {
            assertTrue(map.contains("groups.g" + g + ".hosts=*:" + 16 * g + "-" + (16 * g + 15) + "\n"), map);
            JsonNode c = expertContainer(docs, "g" + g);
            long hosted = 45L * 16;
            if (hasEnv(c, "MOE_EXPERT_QUANTIZE")) {
                assertEquals("int4", env(c, "MOE_EXPERT_QUANTIZE").path("value").asText());
                int groupSize = Integer.parseInt(env(c, "MOE_EXPERT_QUANTIZE_GROUP_SIZE").path("value").asText());
                // codes at 4 bits and one BF16 scale per group of columns; every projection's columns divide by the group
                assertEquals(0, 1408 % groupSize);
                assertMemoryCovers(c, hosted * (perExpertWeights / 2 + perExpertWeights / groupSize * 2), "GLM-4.5-Air int4 g" + g);
                int4Groups++;
            } else {
                assertMemoryCovers(c, hosted * perExpertWeights * 2, "GLM-4.5-Air BF16 g" + g);
            }
        }
        assertEquals(4, int4Groups);
        assertEquals("moe-models", named(docs, "Deployment", "moe-moe-serve-expert-g0").path("spec").path("template").path("spec")
                .path("volumes").get(1).path("persistentVolumeClaim").path("claimName").asText());
        // the router holds attention, embeddings, lm_head, layer 0's MLP, the shared experts and gates: 7.2 G BF16 weights
        long dense = 2L * 151552 * 4096 + 46L * 4096 * (12288 + 1024 + 1024 + 12288) + 3L * 4096 * 10944 + 45L * 3 * 4096 * 1408
                + 45L * 128 * 4096;
        JsonNode router = named(docs, "Deployment", "moe-moe-serve-router").path("spec").path("template").path("spec").path("containers").get(0);
        assertMemoryCovers(router, 2 * dense, "GLM-4.5-Air router");
    }

    /** Bytes of an MXFP4 matrix: half a byte a weight plus one scale byte per 32 columns. */
    private static long mxfp4Bytes(long rows, long cols) {
        return rows * cols / 2 + rows * cols / 32;
    }

    /** The container's memory request and limit hold {@code bytes} of weights with at least 2 GiB to spare. */
    private static void assertMemoryCovers(JsonNode container, long bytes, String what) {
        for (String kind : List.of("requests", "limits")) {
            String q = container.path("resources").path(kind).path("memory").asText();
            long have = Quantity.fromString(q).getNumber().longValueExact();
            assertTrue(have >= bytes + (2L << 30), String.format("%s: %s.memory %s for %.2f GiB of weights", what, kind, q,
                    bytes / (double) (1L << 30)));
        }
    }

    /** huggingface_hub's allow_patterns test: fnmatch, whose {@code *} crosses directories. */
    private static boolean hubMatches(String pattern, String file) {
        StringBuilder re = new StringBuilder();
        for (char ch : pattern.toCharArray()) re.append(ch == '*' ? ".*" : ch == '?' ? "." : Pattern.quote(String.valueOf(ch)));
        return file.matches(re.toString());
    }

    private static JsonNode expertContainer(List<JsonNode> docs, String group) {
        return named(docs, "Deployment", "moe-moe-serve-expert-" + group).path("spec").path("template").path("spec").path("containers").get(0);
    }

    private static boolean hasEnv(JsonNode container, String name) {
        for (JsonNode e : container.path("env")) if (name.equals(e.path("name").asText())) return true;
        return false;
    }

    @Test
    void hpaPerGroupMetricsAndBehaviour() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("hpa"));
        JsonNode hot = named(docs, "HorizontalPodAutoscaler", "moe-moe-serve-expert-hot").path("spec");
        assertEquals("moe_expert_pod_tokens_per_second", hot.path("metrics").get(0).path("pods").path("metric").path("name").asText());
        assertEquals("40000000m", hot.path("metrics").get(0).path("pods").path("target").path("averageValue").asText());
        assertEquals(120, hot.path("behavior").path("scaleDown").path("stabilizationWindowSeconds").asInt());
        assertEquals("0.05", hot.path("behavior").path("scaleUp").path("tolerance").asText());
        assertEquals(2, hot.path("minReplicas").asInt(), "chart-wide default kept where the group does not override");
        JsonNode warm = named(docs, "HorizontalPodAutoscaler", "moe-moe-serve-expert-warm").path("spec");
        assertEquals("moe_expert_pod_utilization", warm.path("metrics").get(0).path("pods").path("metric").path("name").asText());
        assertEquals("600m", warm.path("metrics").get(0).path("pods").path("target").path("averageValue").asText());
        assertEquals(300, warm.path("behavior").path("scaleDown").path("stabilizationWindowSeconds").asInt());
        JsonNode cold = named(docs, "HorizontalPodAutoscaler", "moe-moe-serve-expert-cold").path("spec");
        assertEquals("moe_expert_pod_queue_wait_seconds_mean", cold.path("metrics").get(0).path("pods").path("metric").path("name").asText());
        assertEquals("20m", cold.path("metrics").get(0).path("pods").path("target").path("averageValue").asText());
        assertEquals(1, cold.path("minReplicas").asInt());
        assertTrue(named(docs, "Deployment", "moe-moe-serve-expert-hot").path("spec").path("replicas").isMissingNode(), "the HPA owns replicas");
        named(docs, "ServiceMonitor", "moe-moe-serve");
        assertEquals("monitoring", named(docs, "ConfigMap", "moe-moe-serve-adapter-rules").path("metadata").path("namespace").asText(),
                "beside the adapter, which mounts it");
        assertEquals(0, ofKind(docs, "ScaledObject").size());
    }

    @Test
    void kedaScaledObjects() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("keda"));
        assertEquals(0, ofKind(docs, "HorizontalPodAutoscaler").size(), "KEDA owns the HPA: never a second one");
        assertEquals(3, ofKind(docs, "ScaledObject").size());
        assertTrue(ofKind(docs, "ConfigMap").stream().noneMatch(c -> c.path("metadata").path("name").asText().endsWith("adapter-rules")));
        JsonNode g0 = named(docs, "ScaledObject", "moe-moe-serve-expert-g0").path("spec");
        JsonNode t = g0.path("triggers").get(0);
        assertEquals("prometheus", t.path("type").asText());
        assertEquals("AverageValue", t.path("metricType").asText());
        assertEquals("sum(rate(moe_expert_pod_busy_seconds_total{namespace=\"serving\",group=\"g0\"}[1m]))",
                t.path("metadata").path("query").asText());
        assertEquals("0.6", t.path("metadata").path("threshold").asText());
        assertEquals("false", t.path("metadata").path("ignoreNullValues").asText());
        assertEquals(3, g0.path("fallback").path("replicas").asInt());
        assertEquals(1, g0.path("minReplicaCount").asInt());
        JsonNode g1 = named(docs, "ScaledObject", "moe-moe-serve-expert-g1").path("spec").path("triggers").get(0);
        assertEquals("Value", g1.path("metricType").asText(), "a mean wait is compared as is, not per pod");
        assertEquals(4, named(docs, "ScaledObject", "moe-moe-serve-expert-g2").path("spec").path("maxReplicaCount").asInt());
    }

    @Test
    void manyGroups() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("many-groups"));
        assertEquals(16, ofKind(docs, "HorizontalPodAutoscaler").size(), "exactly the example's groups, none from the defaults");
        assertEquals(16 + 2, ofKind(docs, "Deployment").size());
        assertEquals(16 + 2, ofKind(docs, "PodDisruptionBudget").size());
        String map = named(docs, "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        for (int g = 0; g < 16; g++) {
            String n = String.format("g%02d", g);
            assertTrue(map.contains("moe.router.experts.groups." + n + ".hosts=*:" + 4 * g + "-" + (4 * g + 3) + "\n"), map);
            assertTrue(map.contains("moe.router.experts.groups." + n + ".endpoints=dns:moe-moe-serve-expert-" + n
                    + ".serving.svc.cluster.local:9000"), map);
            JsonNode svc = named(docs, "Service", "moe-moe-serve-expert-" + n);
            assertEquals("None", svc.path("spec").path("clusterIP").asText(), "headless, for the router's discovery");
        }
        assertTrue(map.contains("moe.router.experts.mode=remote\nmoe.router.experts.routing-table-version=1\n"
                + "moe.router.experts.refresh-interval=5s\nmoe.router.experts.groups."), map);
    }

    @Test
    void autoscalingOff() {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("autoscaling-off"));
        assertEquals(0, ofKind(docs, "HorizontalPodAutoscaler").size() + ofKind(docs, "ScaledObject").size() + ofKind(docs, "NetworkPolicy").size());
        assertEquals(3, named(docs, "Deployment", "moe-moe-serve-expert-g0").path("spec").path("replicas").asInt());
        assertEquals(2, named(docs, "Deployment", "moe-moe-serve-expert-g1").path("spec").path("replicas").asInt());
    }

    @ParameterizedTest(name = "hardened pods in {0}")
    @MethodSource("examples")
    void everyPodIsHardenedProbedAndDrains(String example) throws Exception {
        List<JsonNode> docs = Charts.renderWithTestHooks(values(example), work);
        List<JsonNode> pods = new ArrayList<>();
        for (JsonNode d : ofKind(docs, "Deployment")) pods.add(d.path("spec").path("template").path("spec"));
        for (JsonNode d : ofKind(docs, "Pod")) pods.add(d.path("spec"));
        for (JsonNode pod : pods) {
            assertTrue(pod.path("securityContext").path("runAsNonRoot").asBoolean());
            List<JsonNode> containers = new ArrayList<>();
            pod.path("containers").forEach(containers::add);
            pod.path("initContainers").forEach(containers::add);
            for (JsonNode c : containers) {
                JsonNode sc = c.path("securityContext");
                assertTrue(sc.path("readOnlyRootFilesystem").asBoolean() && !sc.path("allowPrivilegeEscalation").asBoolean(true), c.toString());
                assertEquals("[\"ALL\"]", sc.path("capabilities").path("drop").toString());
                assertTrue(c.path("volumeMounts").toString().contains("\"/tmp\"") || c.path("name").asText().equals("test"), "writable /tmp for "
                        + c.path("name"));
            }
        }
        for (JsonNode d : ofKind(docs, "Deployment")) {
            JsonNode pod = d.path("spec").path("template").path("spec");
            JsonNode c = pod.path("containers").get(0);
            for (String p : Set.of("startupProbe", "readinessProbe", "livenessProbe")) assertFalse(c.path(p).isMissingNode(), p + " on "
                    + d.path("metadata").path("name"));
            int preStop = c.path("lifecycle").path("preStop").path("sleep").path("seconds").asInt();
            int grace = pod.path("terminationGracePeriodSeconds").asInt();
            if ("expert".equals(d.path("metadata").path("labels").path("app.kubernetes.io/component").asText())) {
                String drain = env(c, "MOE_EXPERT_DRAIN_TIMEOUT").path("value").asText();
                int drainSeconds = Integer.parseInt(drain.replace("s", ""));
                assertTrue(grace >= preStop + drainSeconds, "grace " + grace + " >= preStop " + preStop + " + drain " + drainSeconds);
            } else {
                assertTrue(grace > preStop);
            }
        }
    }

    @Test
    void helmTestPodChecksRouterAndGateway() throws Exception {
        assertEquals(0, ofKind(Charts.renderDocs(Charts.example("cpu-only")), "Pod").size(), "a hook: not installed with the release");
        List<JsonNode> docs = Charts.renderWithTestHooks(Charts.example("cpu-only"), work);
        JsonNode test = named(docs, "Pod", "moe-moe-serve-test");
        assertEquals("test", test.path("metadata").path("annotations").path("moe-serve.io/helm-hook").asText());
        String script = test.path("spec").path("containers").get(0).path("args").get(0).asText();
        assertTrue(script.contains("/v1/models") && script.contains("/v1/routing-stats") && script.contains("/q/health/ready"));
    }
}

package io.moeserve.helm;

import static io.moeserve.helm.Charts.env;
import static io.moeserve.helm.Charts.named;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kubernetes.client.custom.Quantity;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The memory formula of helm/README.md ("Memory"), rendered by the real Helm engine: each container's memory request
 * and limit, and the JVM options (JDK_JAVA_OPTIONS) that size its heap and direct memory to fit them.
 */
class MemorySizingTest {
    private static final long MIB = 1L << 20;
    private static final Pattern XMX = Pattern.compile("-Xmx(\\d+)m");
    private static final Pattern DIRECT = Pattern.compile("-XX:MaxDirectMemorySize=(\\d+)m");

    @Test
    void defaultsFollowTheFormula() {
        List<JsonNode> docs = Charts.renderDocs(null);
        // gateway: 512 heap + 128 direct + 384 overhead = 1024 MiB
        JsonNode gw = container(docs, "moe-moe-serve-gateway");
        assertEquals("-Xms512m -Xmx512m -XX:MaxDirectMemorySize=128m", env(gw, "JDK_JAVA_OPTIONS").path("value").asText());
        assertMemory(gw, "1Gi");
        assertEquals("1", gw.path("resources").path("requests").path("cpu").asText());
        // router: heap 512 + KV cache 256 = 768; + 256 direct + 384 overhead + 6144 dense weights = 7552 MiB -> 8 GiB
        JsonNode router = container(docs, "moe-moe-serve-router");
        assertEquals("-Xms768m -Xmx768m -XX:MaxDirectMemorySize=256m", env(router, "JDK_JAVA_OPTIONS").path("value").asText());
        assertEquals("256M", env(router, "MOE_ROUTER_BATCHING_KV_CACHE_MEMORY").path("value").asText());
        assertMemory(router, "8Gi");
        // expert pod: 512 + 256 + 384 + 6144 = 7296 MiB -> 8 GiB
        JsonNode expert = container(docs, "moe-moe-serve-expert-all");
        assertEquals("-Xms512m -Xmx512m -XX:MaxDirectMemorySize=256m", env(expert, "JDK_JAVA_OPTIONS").path("value").asText());
        assertMemory(expert, "8Gi");
    }

    @Test
    void aGroupsWeightsAndTheRoutersKvCacheRaiseTheirLimits() {
        List<JsonNode> docs = Charts.documents(Charts.render(null, Map.of(
                "expertGroups.big.hosts", "*:0-31", "expertGroups.big.memory.weightsMiB", 20000,
                "expertGroups.small.hosts", "*:32-63",
                "router.memory.kvCacheMiB", 8192)));
        // 512 + 256 + 384 + 20000 = 21152 MiB -> 21 GiB; the other group keeps the defaults' 8 GiB
        assertMemory(container(docs, "moe-moe-serve-expert-big"), "21Gi");
        assertMemory(container(docs, "moe-moe-serve-expert-small"), "8Gi");
        // the KV cache may take 70% of the heap: 8192 / 0.7 = 11703 MiB beats 512 + 8192
        JsonNode router = container(docs, "moe-moe-serve-router");
        assertEquals("-Xms11703m -Xmx11703m -XX:MaxDirectMemorySize=256m", env(router, "JDK_JAVA_OPTIONS").path("value").asText());
        assertEquals("8192M", env(router, "MOE_ROUTER_BATCHING_KV_CACHE_MEMORY").path("value").asText());
        // 11703 + 256 + 384 + 6144 = 18487 MiB -> 19 GiB
        assertMemory(router, "19Gi");
    }

    @Test
    void aMemoryNamedInResourcesWinsAndTheOtherSideFollowsIt() {
        List<JsonNode> docs = Charts.documents(Charts.render(null, Map.of("gateway.resources.limits.memory", "3Gi",
                "gateway.memory.heapMiB", 2048)));
        JsonNode gw = container(docs, "moe-moe-serve-gateway");
        assertMemory(gw, "3Gi");
        assertEquals("-Xms2048m -Xmx2048m -XX:MaxDirectMemorySize=128m", env(gw, "JDK_JAVA_OPTIONS").path("value").asText());
    }

    @Test
    void theKvCacheIsSetInOnePlaceOnly() {
        Exception e = assertThrows(Exception.class, () -> Charts.render(null,
                Map.of("router.extraProperties.moe\\.router\\.batching\\.kv-cache-memory", "1G")));
        assertTrue(e.getMessage().contains("router.memory.kvCacheMiB"), e.getMessage());
    }

    /** In every example and the defaults, what the JVM may take (heap, direct memory) fits each JVM container's limit. */
    @Test
    void everyJvmFitsItsLimitInEveryExample() {
        for (String example : Charts.examples()) check(Charts.renderDocs(Charts.example(example)), example);
        check(Charts.renderDocs(null), "defaults");
    }

    private static void check(List<JsonNode> docs, String where) {
        int jvms = 0;
        for (JsonNode d : Charts.ofKind(docs, "Deployment")) {
            for (JsonNode c : d.path("spec").path("template").path("spec").path("containers")) {
                String options = env(c, "JDK_JAVA_OPTIONS").path("value").asText();
                long heap = group(XMX, options) * MIB;
                long direct = group(DIRECT, options) * MIB;
                long limit = bytes(c.path("resources").path("limits").path("memory").asText());
                String what = where + ": " + d.path("metadata").path("name").asText();
                assertEquals(limit, bytes(c.path("resources").path("requests").path("memory").asText()), what + ": request = limit");
                assertTrue(heap + direct < limit, what + ": " + options + " in " + limit / MIB + " MiB");
                if ("router".equals(c.path("name").asText())) {
                    long kv = bytes(env(c, "MOE_ROUTER_BATCHING_KV_CACHE_MEMORY").path("value").asText() + "i");
                    assertTrue(kv <= heap * 0.7, what + ": KV cache " + kv / MIB + " MiB in a heap of " + heap / MIB + " MiB");
                }
                jvms++;
            }
        }
        assertTrue(jvms >= 3, where + ": " + jvms + " JVM containers");
    }

    private static JsonNode container(List<JsonNode> docs, String deployment) {
        return named(docs, "Deployment", deployment).path("spec").path("template").path("spec").path("containers").get(0);
    }

    private static void assertMemory(JsonNode container, String memory) {
        assertEquals(memory, container.path("resources").path("requests").path("memory").asText());
        assertEquals(memory, container.path("resources").path("limits").path("memory").asText());
    }

    private static long group(Pattern p, String s) {
        Matcher m = p.matcher(s);
        assertTrue(m.find(), p + " in '" + s + "'");
        return Long.parseLong(m.group(1));
    }

    private static long bytes(String quantity) {
        return Quantity.fromString(quantity).getNumber().longValueExact();
    }
}

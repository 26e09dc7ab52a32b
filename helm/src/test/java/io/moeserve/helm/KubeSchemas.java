package io.moeserve.helm;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import io.kubernetes.client.openapi.JSON;
import io.kubernetes.client.openapi.models.V1ConfigMap;
import io.kubernetes.client.openapi.models.V1Deployment;
import io.kubernetes.client.openapi.models.V1LabelSelector;
import io.kubernetes.client.openapi.models.V1NetworkPolicy;
import io.kubernetes.client.openapi.models.V1ObjectMeta;
import io.kubernetes.client.openapi.models.V1Pod;
import io.kubernetes.client.openapi.models.V1PodDisruptionBudget;
import io.kubernetes.client.openapi.models.V1Secret;
import io.kubernetes.client.openapi.models.V1Service;
import io.kubernetes.client.openapi.models.V1ServiceAccount;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscaler;
import io.kubernetes.client.openapi.models.V2HorizontalPodAutoscalerBehavior;
import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Strict validation against the Kubernetes API model of client-java 27 (generated from the Kubernetes 1.35 OpenAPI
 * spec): each model's {@code validateJsonElement} rejects a field the API does not define and a missing required
 * field, recursively, and deserialisation checks the types. For the KEDA and Prometheus Operator objects the parts
 * that are Kubernetes types (metadata, the HPA behavior KEDA passes on, the label selector) are checked the same way.
 */
public final class KubeSchemas {
    private static final Map<String, Class<?>> TYPES = Map.of(
            "apps/v1/Deployment", V1Deployment.class,
            "v1/Service", V1Service.class,
            "v1/ConfigMap", V1ConfigMap.class,
            "v1/Secret", V1Secret.class,
            "v1/ServiceAccount", V1ServiceAccount.class,
            "v1/Pod", V1Pod.class,
            "policy/v1/PodDisruptionBudget", V1PodDisruptionBudget.class,
            "autoscaling/v2/HorizontalPodAutoscaler", V2HorizontalPodAutoscaler.class,
            "networking.k8s.io/v1/NetworkPolicy", V1NetworkPolicy.class);

    private KubeSchemas() {}

    /** Problems with one rendered object; empty when it is valid. */
    public static List<String> problems(JsonNode doc) {
        String key = doc.path("apiVersion").asText() + "/" + doc.path("kind").asText();
        String where = key + " " + doc.path("metadata").path("name").asText();
        List<String> out = new ArrayList<>();
        Class<?> type = TYPES.get(key);
        if (type != null) {
            check(type, doc, where, out);
        } else if (key.equals("keda.sh/v1alpha1/ScaledObject")) {
            check(V1ObjectMeta.class, doc.path("metadata"), where + " metadata", out);
            JsonNode behavior = doc.path("spec").path("advanced").path("horizontalPodAutoscalerConfig").path("behavior");
            if (!behavior.isMissingNode()) check(V2HorizontalPodAutoscalerBehavior.class, behavior, where + " behavior", out);
        } else if (key.equals("monitoring.coreos.com/v1/ServiceMonitor")) {
            check(V1ObjectMeta.class, doc.path("metadata"), where + " metadata", out);
            check(V1LabelSelector.class, doc.path("spec").path("selector"), where + " selector", out);
        } else {
            out.add(where + ": no API schema known for " + key);
        }
        return out;
    }

    private static void check(Class<?> type, JsonNode node, String where, List<String> out) {
        String json = node.toString();
        JsonElement el = JsonParser.parseString(json);
        try {
            type.getMethod("validateJsonElement", JsonElement.class).invoke(null, el);
            new JSON().deserialize(json, type);
        } catch (InvocationTargetException e) {
            out.add(where + ": " + e.getCause().getMessage());
        } catch (RuntimeException | ReflectiveOperationException e) {
            out.add(where + ": " + e.getMessage());
        }
    }
}

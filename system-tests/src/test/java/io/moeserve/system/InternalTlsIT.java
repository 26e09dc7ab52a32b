package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.NettyChannelBuilder;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.tokenizer.HfTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Every internal gRPC hop over mutual TLS (moe.tls.*, as the chart's {@code tls.enabled} sets it), with certificates
 * made here by openssl the way a cert-manager Secret holds them: a CA, and one certificate for all three services
 * (tls.crt, tls.key in PKCS#8, ca.crt). Gateway → router → expert pod as real processes generate what the runtime
 * generates in one process; and the router's and the pod's gRPC ports turn away a client without a certificate, one
 * whose certificate another CA signed, and plaintext, while the same client with the deployment's certificate is
 * served (so the refusals are the certificate's doing).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class InternalTlsIT {
    private static final Path MODEL = Models.small(Architecture.MIXTRAL);
    private static final String MODEL_ID = "mixtral";
    private Path certs;
    private Deployment d;
    private ServiceProcess gateway;
    private OpenAIClient client;

    @BeforeAll
    void start() throws IOException {
        certs = Files.createTempDirectory("moe-tls-");
        // the deployment's CA and its one certificate, valid for loopback by name and address
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=moe-serve test CA");
        issue("ca", "tls");
        // a stranger: a certificate from another CA
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2",
                "-subj", "/CN=another CA");
        issue("other-ca", "other");

        Map<String, String> tls = Map.of("moe.tls.enabled", "true", "moe.tls.mutual", "true",
                "moe.tls.certificate", certs.resolve("tls.crt").toString(), "moe.tls.key", certs.resolve("tls.key").toString(),
                "moe.tls.ca", certs.resolve("ca.crt").toString());
        d = new Deployment(MODEL, MODEL_ID);
        d.startExpert("all", "*", tls);
        d.startRouter(tls);
        Map<String, String> g = new HashMap<>(tls);
        g.put("moe.model.path", MODEL.toString());
        g.put("moe.model.id", MODEL_ID);
        g.put("quarkus.grpc.clients.router.host", "127.0.0.1");
        g.put("quarkus.grpc.clients.router.port", Integer.toString(d.router.grpcPort));
        gateway = ServiceProcess.start("gateway", "gateway-service", g);
        // the router is ready once it has described its pod over TLS, the gateway once it has described the router
        d.awaitReady();
        gateway.awaitReady(Deployment.START);
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + gateway.httpPort + "/v1").apiKey("unused")
                .maxRetries(0).timeout(Duration.ofSeconds(120)).build();
    }

    @AfterAll
    void stop() throws IOException {
        if (gateway != null) gateway.close();
        if (d != null) d.close();
        if (certs != null) {
            try (var files = Files.list(certs)) {
                for (Path f : files.toList()) Files.delete(f);
            }
            Files.delete(certs);
        }
    }

    private void issue(String ca, String name) {
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=moe-serve " + name);
        try {
            Files.writeString(certs.resolve(name + ".ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    + "extendedKeyUsage=serverAuth,clientAuth\n");
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt",
                "-days", "2", "-extfile", name + ".ext");
    }

    /** openssl in the certificate directory; openssl 3 writes keys as PKCS#8, as cert-manager does with encoding PKCS8. */
    private void openssl(String... args) {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).directory(certs.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) throw new IllegalStateException(cmd + " failed: " + out);
        } catch (IOException e) {
            throw new IllegalStateException("this test makes its certificates with openssl, which must be on the PATH: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    @Test
    void greedyTextOverTlsIsTheRuntimesInProcessOutput() throws IOException {
        int[] prompt = {11, 250, 3, 1999, 42, 7, 300, 12};
        int[] expected = Models.inProcess(MODEL, prompt, 12);
        List<Long> ids = java.util.Arrays.stream(prompt).mapToLong(i -> i).boxed().toList();
        Completion c = client.completions().create(CompletionCreateParams.builder().model(MODEL_ID)
                .prompt(CompletionCreateParams.Prompt.ofArrayOfTokens(ids)).maxTokens(12L).temperature(0.0)
                .putAdditionalBodyProperty("ignore_eos", com.openai.core.JsonValue.from(true)).build());
        try (HfTokenizer tok = HfTokenizer.load(MODEL)) {
            assertEquals(tok.decode(expected, true), c.choices().getFirst().text());
        }
        // a chat completion, through the chat template, generates every token asked for
        ChatCompletion chat = client.chat().completions().create(ChatCompletionCreateParams.builder().model(MODEL_ID)
                .addUserMessage("Hello over TLS").maxCompletionTokens(8).temperature(0.0)
                .putAdditionalBodyProperty("ignore_eos", com.openai.core.JsonValue.from(true)).build());
        assertEquals(8, chat.usage().orElseThrow().completionTokens());
    }

    @Test
    void theRoutersPortServesOnlyTheDeploymentsCertificate() {
        assertEquals(MODEL_ID, describeRouter(tls("tls")).getModelId(), "the deployment's certificate is served");
        assertRefused(() -> describeRouter(tls(null)), "no client certificate");
        assertRefused(() -> describeRouter(tls("other")), "a certificate another CA signed");
        assertRefused(() -> describeRouter(InsecureChannelCredentials.create()), "plaintext");
    }

    @Test
    void theExpertPodsPortServesOnlyTheDeploymentsCertificate() {
        assertEquals(MODEL_ID, describePod(tls("tls")).getModelId(), "the deployment's certificate is served");
        assertRefused(() -> describePod(tls(null)), "no client certificate");
        assertRefused(() -> describePod(tls("other")), "a certificate another CA signed");
        assertRefused(() -> describePod(InsecureChannelCredentials.create()), "plaintext");
    }

    /** TLS trusting the deployment's CA, offering the named certificate, or none. */
    private ChannelCredentials tls(String certificate) {
        try {
            TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder().trustManager(certs.resolve("ca.crt").toFile());
            if (certificate != null) {
                b.keyManager(certs.resolve(certificate + ".crt").toFile(), certs.resolve(certificate + ".key").toFile());
            }
            return b.build();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private io.moeserve.proto.router.v1.ModelDescription describeRouter(ChannelCredentials credentials) {
        ManagedChannel c = NettyChannelBuilder.forAddress("127.0.0.1", d.router.grpcPort, credentials).build();
        try {
            return RouterServiceGrpc.newBlockingStub(c).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .describeModel(DescribeModelRequest.getDefaultInstance());
        } finally {
            c.shutdownNow();
        }
    }

    private io.moeserve.proto.expert.v1.PodDescription describePod(ChannelCredentials credentials) {
        ManagedChannel c = NettyChannelBuilder.forAddress("127.0.0.1", d.experts.get("all").getFirst().grpcPort, credentials).build();
        try {
            return ExpertServiceGrpc.newBlockingStub(c).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .describePod(DescribePodRequest.getDefaultInstance());
        } finally {
            c.shutdownNow();
        }
    }

    private static void assertRefused(Runnable call, String who) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run, who + " must be refused");
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), who + ": " + e.getStatus());
    }
}

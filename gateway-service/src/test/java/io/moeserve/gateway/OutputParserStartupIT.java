package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged gateway (quarkus-run.jar) does not start with {@code moe.gateway.output-parser=harmony} and a
 * tokenizer without harmony's special tokens: the process exits saying why, rather than serving a gateway whose
 * every chat completion would fail.
 */
class OutputParserStartupIT {

    @Test
    void harmonyWithoutItsTokensStopsTheStart(@TempDir Path dir) throws Exception {
        Path jar = Path.of("target", "quarkus-app", "quarkus-run.jar").toAbsolutePath();
        assertTrue(Files.exists(jar), "the packaged gateway is missing: " + jar);
        Path checkpoint = dir.resolve("chatml-model");
        SyntheticTokenizerBuilder.write(checkpoint, 1000);
        Path log = dir.resolve("gateway.log");
        Process gateway = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-Dmoe.model.path=" + checkpoint, "-Dmoe.gateway.output-parser=harmony", "-Dquarkus.http.port=0",
                "-jar", jar.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean exited = gateway.waitFor(120, TimeUnit.SECONDS);
        if (!exited) gateway.destroyForcibly().waitFor();
        String output = Files.readString(log);
        assertTrue(exited, "the gateway started anyway:\n" + output);
        assertNotEquals(0, gateway.exitValue(), output);
        assertTrue(output.contains("moe.gateway.output-parser is harmony, but the tokenizer of " + checkpoint
                + " lacks harmony's special tokens [<|start|>, <|channel|>"), output);
    }
}

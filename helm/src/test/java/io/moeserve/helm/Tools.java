package io.moeserve.helm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The external checkers: node (helm/validate) and promtool. A missing tool fails the test with what to install. */
public final class Tools {
    public record Result(int exitCode, String output) {}

    private Tools() {}

    public static Result run(Path dir, List<String> command, String missingHint) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError(command.getFirst() + " is not installed: " + missingHint, e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(command + " did not finish in 120 s");
        }
        return new Result(p.exitValue(), out);
    }

    /** Runs helm/validate/validate.mjs over the objects (and the adapter config); its report, empty when all pass. */
    public static Result nodeValidate(List<JsonNode> objects, JsonNode adapterConfig, Path work) throws IOException, InterruptedException {
        Path validate = Charts.helmDir().resolve("validate");
        if (!Files.isDirectory(validate.resolve("node_modules/kubernetes-models"))) {
            throw new AssertionError("helm/validate/node_modules is missing: run `npm ci` in helm/validate (the Maven build does it)");
        }
        ObjectNode in = Charts.JSON.createObjectNode();
        in.putArray("objects").addAll(objects);
        in.set("adapterConfig", adapterConfig);
        Path f = Files.createTempFile(work, "objects", ".json");
        Files.writeString(f, in.toString());
        return run(validate, List.of("node", "validate.mjs", f.toString()),
                "the manifest tests need Node.js (Debian: apt-get install nodejs npm); test.sh installs it when run as root");
    }

    public static Result promtoolCheckRules(Path rulesFile) throws IOException, InterruptedException {
        return run(rulesFile.getParent(), List.of("promtool", "check", "rules", rulesFile.toString()),
                "the PromQL tests need promtool (Debian package prometheus); test.sh installs it when run as root");
    }

    public static List<String> lines(String s) {
        List<String> out = new ArrayList<>();
        for (String l : s.split("\n")) if (!l.isBlank()) out.add(l);
        return out;
    }
}

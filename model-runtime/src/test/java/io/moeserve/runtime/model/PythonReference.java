package io.moeserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs tools/reference/moe_reference.py (the independent numpy implementation) and returns its JSON. */
final class PythonReference {
    private static String python;

    private PythonReference() {}

    static JsonNode run(Path checkpoint, int[] prompt, int maxNewTokens) throws IOException, InterruptedException {
        return run(checkpoint, prompt, maxNewTokens, true);
    }

    static JsonNode runStoppingAtEos(Path checkpoint, int[] prompt, int maxNewTokens) throws IOException, InterruptedException {
        return run(checkpoint, prompt, maxNewTokens, false);
    }

    private static JsonNode run(Path checkpoint, int[] prompt, int maxNewTokens, boolean ignoreEos) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(python(), script().toString(), checkpoint.toString(), "--prompt-ids",
                String.join(",", java.util.Arrays.stream(prompt).mapToObj(Integer::toString).toList()),
                "--max-new-tokens", Integer.toString(maxNewTokens)));
        if (ignoreEos) cmd.add("--ignore-eos");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(false).start();
        byte[] out = p.getInputStream().readAllBytes();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("reference failed (" + String.join(" ", cmd) + "): " + err);
        }
        return new ObjectMapper().readTree(out);
    }

    static Path script() {
        return tool("moe_reference.py");
    }

    /** A script of tools/reference, found by walking up from the working directory. */
    static Path tool(String name) {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null) {
            Path s = dir.resolve("tools/reference/" + name);
            if (Files.isRegularFile(s)) return s;
            dir = dir.getParent();
        }
        throw new IllegalStateException("tools/reference/" + name + " not found above " + Path.of("").toAbsolutePath());
    }

    /** Writes the reference's suite of independently written tiny checkpoints; returns suite.json. */
    static JsonNode writeSuite(Path root) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(python(), tool("make_tiny_checkpoint.py").toString(), "--suite", root.toString())
                .redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) throw new IllegalStateException("suite generation failed: " + log);
        return new ObjectMapper().readTree(root.resolve("suite.json").toFile());
    }

    /** A python3 that has numpy: the one on the PATH, else Debian's. .ci/run installs python3-numpy when neither has. */
    static synchronized String python() throws IOException, InterruptedException {
        if (python != null) return python;
        for (String candidate : List.of("python3", "/usr/bin/python3")) {
            try {
                Process p = new ProcessBuilder(candidate, "-c", "import numpy").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) return python = candidate;
            } catch (IOException notThere) {
                // try the next
            }
        }
        throw new IllegalStateException("no python3 with numpy found: install python3-numpy (the reference checker needs it)");
    }
}

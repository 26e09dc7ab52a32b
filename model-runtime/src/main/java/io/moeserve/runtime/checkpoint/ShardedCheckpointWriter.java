package io.moeserve.runtime.checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes a whole model as transformers' {@code save_pretrained} lays it out: one {@code model.safetensors}, or
 * {@code model-00001-of-0000N.safetensors} shards plus {@code model.safetensors.index.json}.
 *
 * <p>Shards are filled greedily in tensor-name order, as huggingface_hub splits a state dict: a tensor goes into
 * the current shard unless that would take the shard's tensor data past the limit, and a tensor larger than the
 * limit gets a shard of its own. Sizes count tensor bytes only, not headers, as transformers counts them.
 */
public final class ShardedCheckpointWriter {

    public static final String SINGLE_FILE = "model.safetensors";

    /** The files a previous save into the same directory may have left; stale ones would confuse a reader. */
    private static final Pattern WEIGHT_FILE = Pattern.compile(
            "model\\.safetensors|model\\.safetensors\\.index\\.json|model-\\d{5}-of-\\d{5}\\.safetensors");

    private ShardedCheckpointWriter() {}

    /**
     * Copies what a rewritten checkpoint (quantized, pruned, merged) keeps as it is: every regular file of
     * {@code source} but its weights, their index and config.json (tokenizer, chat template, generation config).
     */
    public static void copyOtherFiles(Path source, Path target) throws IOException {
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) {
                String n = f.getFileName().toString();
                if (!Files.isRegularFile(f) || n.endsWith(".safetensors") || n.equals("model.safetensors.index.json")
                        || n.equals("config.json")) {
                    continue;
                }
                Files.copy(f, target.resolve(n), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    /** Writes {@code tensors} into {@code directory}, sharding only when they exceed {@code maxShardBytes}. */
    public static List<Path> write(Path directory, List<TensorSpec> tensors, long maxShardBytes) {
        return write(directory, tensors, maxShardBytes, false);
    }

    /**
     * Writes {@code tensors} into {@code directory} (created if needed) and returns the files written, shards
     * first, index last. With {@code forceSharding}, the sharded layout (index included) is written even when
     * everything fits in one shard, which gives tests sharded checkpoints of tiny models. Weight files of an
     * earlier save in the same directory are deleted first.
     */
    public static List<Path> write(Path directory, List<TensorSpec> tensors, long maxShardBytes,
                                   boolean forceSharding) {
        if (maxShardBytes <= 0) throw new IllegalArgumentException("maxShardBytes must be positive: " + maxShardBytes);
        List<TensorSpec> sorted = tensors.stream().sorted(Comparator.comparing(TensorSpec::name)).toList();
        prepare(directory);
        List<List<TensorSpec>> shards = split(sorted, maxShardBytes);
        if (shards.size() == 1 && !forceSharding) {
            Path file = directory.resolve(SINGLE_FILE);
            SafetensorsWriter.write(file, sorted);
            return List.of(file);
        }
        if (shards.size() > 99_999) {
            throw new IllegalArgumentException("cannot write " + directory + ": " + shards.size()
                    + " shards exceed the 5-digit shard numbering; raise maxShardBytes");
        }
        List<Path> written = new ArrayList<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        long totalSize = 0;
        for (int i = 0; i < shards.size(); i++) {
            String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            Path file = directory.resolve(name);
            SafetensorsWriter.write(file, shards.get(i));
            written.add(file);
            for (TensorSpec t : shards.get(i)) {
                weightMap.put(t.name(), name);
                totalSize += t.byteSize();
            }
        }
        Path index = directory.resolve(SafetensorsIndex.FILE_NAME);
        SafetensorsIndex.write(index, totalSize, weightMap);
        written.add(index);
        return List.copyOf(written);
    }

    private static List<List<TensorSpec>> split(List<TensorSpec> sorted, long maxShardBytes) {
        List<List<TensorSpec>> shards = new ArrayList<>();
        List<TensorSpec> current = new ArrayList<>();
        long currentBytes = 0;
        for (TensorSpec t : sorted) {
            if (!current.isEmpty() && currentBytes + t.byteSize() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += t.byteSize();
        }
        // An empty model still gets one (empty) file, so that the directory reads back as a checkpoint.
        shards.add(current);
        return shards;
    }

    private static void prepare(Path directory) {
        try {
            Files.createDirectories(directory);
            try (Stream<Path> files = Files.list(directory)) {
                for (Path f : files.toList()) {
                    if (WEIGHT_FILE.matcher(f.getFileName().toString()).matches()) Files.delete(f);
                }
            }
        } catch (IOException e) {
            throw new CheckpointException("cannot prepare checkpoint directory " + directory + ": " + e, e);
        }
    }
}

package io.moeserve.runtime.checkpoint;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A Hugging Face checkpoint directory: every tensor of every safetensors shard, by name, memory-mapped.
 *
 * <p>Layouts, in order of precedence: {@code model.safetensors.index.json} with its shards (other safetensors
 * files beside them, such as Mistral's {@code consolidated.safetensors}, are ignored); a single
 * {@code model.safetensors}. Anything else is an error that says what is missing. The index and the shards must
 * agree exactly: a tensor the index promises but the shard lacks, or one a shard holds that the index does not
 * list, means a half-downloaded or hand-edited checkpoint, and loading it would fail later and more obscurely.
 *
 * <p>Consumption tracking: every tensor handed out by {@link #tensor} or {@link #find} is marked consumed, so
 * that after building a model the loader can call {@link #requireAllConsumed} and learn about weights it did not
 * use: a renamed layer, a wrong architecture, or biases the model code forgot would otherwise load "fine" and
 * generate garbage.
 */
public final class Checkpoint implements AutoCloseable {

    /** How many unconsumed names an error lists before it just counts the rest. */
    private static final int MAX_LISTED = 20;

    private final Path directory;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byName;
    private final Set<String> consumed = ConcurrentHashMap.newKeySet();
    private final QuantizationConfig quantization;
    private volatile boolean int8Activations;

    private Checkpoint(Path directory, List<SafetensorsFile> files, Map<String, SafetensorsFile> byName,
                       QuantizationConfig quantization) {
        this.directory = directory;
        this.files = files;
        this.byName = Collections.unmodifiableMap(byName);
        this.quantization = quantization;
    }

    /** Opens the checkpoint in {@code directory}, mapping every shard and validating every header. */
    public static Checkpoint open(Path directory) {
        if (!Files.isDirectory(directory)) {
            throw new CheckpointException("checkpoint directory " + directory
                    + " does not exist or is not a directory");
        }
        QuantizationConfig quantization = QuantizationConfig.read(directory);
        Path index = directory.resolve(SafetensorsIndex.FILE_NAME);
        if (Files.exists(index)) return openSharded(directory, index, quantization);
        Path single = directory.resolve(ShardedCheckpointWriter.SINGLE_FILE);
        if (Files.exists(single)) {
            SafetensorsFile file = SafetensorsFile.open(single);
            Map<String, SafetensorsFile> byName = new TreeMap<>();
            for (String name : file.tensorNames()) byName.put(name, file);
            return new Checkpoint(directory, List.of(file), byName, quantization);
        }
        List<String> others = safetensorsFilesIn(directory);
        if (others.isEmpty()) throw new CheckpointException("no safetensors files in " + directory);
        throw new CheckpointException("checkpoint directory " + directory + " has safetensors files " + others
                + " but neither " + ShardedCheckpointWriter.SINGLE_FILE + " nor the index file "
                + SafetensorsIndex.FILE_NAME + " that says which tensor is in which; the index file is missing");
    }

    private static Checkpoint openSharded(Path directory, Path index, QuantizationConfig quantization) {
        Map<String, String> weightMap = SafetensorsIndex.readWeightMap(index);
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                String shard = e.getValue();
                if (shards.containsKey(shard)) continue;
                Path file = shardPath(directory, index, shard);
                if (!Files.exists(file)) {
                    throw new CheckpointException("shard " + file + " named in " + index + " (for tensor " + e.getKey()
                            + " and others) is missing");
                }
                shards.put(shard, SafetensorsFile.open(file));
            }
            Map<String, SafetensorsFile> byName = new TreeMap<>();
            for (SafetensorsFile f : shards.values()) {
                for (String name : f.tensorNames()) {
                    SafetensorsFile other = byName.putIfAbsent(name, f);
                    if (other != null) {
                        throw new CheckpointException("tensor " + name + " appears in two files: " + other.path()
                                + " and " + f.path());
                    }
                }
            }
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                SafetensorsFile expected = shards.get(e.getValue());
                if (!expected.contains(e.getKey())) {
                    throw new CheckpointException("tensor " + e.getKey() + " is listed in " + index + " under "
                            + e.getValue() + " but is absent from " + expected.path());
                }
            }
            for (Map.Entry<String, SafetensorsFile> e : byName.entrySet()) {
                if (!weightMap.containsKey(e.getKey())) {
                    throw new CheckpointException(e.getValue().path() + " holds tensor " + e.getKey()
                            + ", which " + index + " does not list");
                }
            }
            return new Checkpoint(directory, List.copyOf(shards.values()), byName, quantization);
        } catch (RuntimeException | Error e) {
            shards.values().forEach(SafetensorsFile::close);
            throw e;
        }
    }

    /** Resolves a shard name from the index, refusing names that would lead outside the checkpoint directory. */
    private static Path shardPath(Path directory, Path index, String shard) {
        // Compared absolute: a relative directory such as "." normalises to an empty path that nothing starts with.
        Path base = directory.toAbsolutePath().normalize();
        if (Path.of(shard).isAbsolute() || !base.resolve(shard).normalize().startsWith(base)) {
            throw new CheckpointException(index + " names shard \"" + shard + "\" outside " + directory);
        }
        return directory.resolve(shard);
    }

    private static List<String> safetensorsFilesIn(Path directory) {
        try (Stream<Path> list = Files.list(directory)) {
            return list.filter(Files::isRegularFile)
                    .map(p -> p.getFileName().toString())
                    .filter(n -> n.endsWith(".safetensors"))
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new CheckpointException("cannot list checkpoint directory " + directory + ": " + e, e);
        }
    }

    public Path directory() {
        return directory;
    }

    /** All tensor names, sorted. */
    public Set<String> names() {
        return byName.keySet();
    }

    /** Whether the checkpoint holds {@code name}; does not mark it consumed. */
    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The named tensor if present (and then marks it consumed); for optional weights such as biases. */
    public Optional<Tensor> find(String name) {
        SafetensorsFile file = byName.get(name);
        if (file == null) return Optional.empty();
        consumed.add(name);
        return Optional.of(file.tensor(name));
    }

    /** The named tensor, marked consumed; throws {@link CheckpointException} when the checkpoint lacks it. */
    public Tensor tensor(String name) {
        return find(name).orElseThrow(() -> missing(name));
    }

    /** "missing tensor", or, when the tensor is there in quantized form, that it is quantized where floats are read. */
    private CheckpointException missing(String name) {
        String packed = byName.containsKey(name + "_packed") ? name + "_packed" : name + "_scale";
        if (name.endsWith(".weight") && byName.containsKey(packed)) {
            return new CheckpointException("tensor " + name + " is stored quantized (" + packed + " in "
                    + fileOf(packed) + "), but this runtime reads quantized weights only in linear layers");
        }
        return new CheckpointException("missing tensor " + name + " in checkpoint " + directory);
    }

    /** The named tensor, which must have exactly {@code expectedShape}; marked consumed only when it does. */
    public Tensor tensor(String name, long... expectedShape) {
        SafetensorsFile file = byName.get(name);
        if (file == null) throw missing(name);
        Tensor t = file.tensor(name);
        if (!Arrays.equals(t.shape(), expectedShape)) {
            throw new CheckpointException("tensor " + name + " in " + file.path() + " has shape "
                    + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(expectedShape));
        }
        consumed.add(name);
        return t;
    }

    /**
     * From now on, int8 and int4 matrices that {@link #matrix} reads are repacked for products with int8 activations
     * ({@code PanelKernel}: llama.cpp's numerics, not the dequantized weights' bits), where their layout allows.
     * Off by default.
     */
    public void useInt8Activations(boolean on) {
        this.int8Activations = on;
    }

    /** Whether {@link #useInt8Activations} is on. */
    public boolean int8Activations() {
        return int8Activations;
    }

    /** What config.json's quantization_config says ({@link QuantizationConfig#NONE} without one). */
    public QuantizationConfig quantization() {
        return quantization;
    }

    /**
     * The weight of a linear layer, {@code name} being its {@code .weight} tensor, of {@code rows × cols}: the
     * float tensor itself, or its quantized codes with their scales (and zero points) as the checkpoint's
     * quantization_config says they are stored ({@link QuantizedWeights}). Every tensor it reads is marked consumed.
     */
    public WeightMatrix matrix(String name, long rows, long cols) {
        return QuantizedWeights.matrix(this, name, rows, cols);
    }

    /**
     * An MXFP4 weight as gpt-oss stores its experts' projections, {@code prefix} naming the pair (e.g.
     * {@code model.layers.0.mlp.experts.gate_up_proj}): codes {@code prefix + "_blocks"}, U8
     * [E, rows, cols / 32, 16], and E8M0 scales {@code prefix + "_scales"}, U8 [E, rows, cols / 32] (or
     * [rows, cols / 32, 16] and [rows, cols / 32] for a single matrix, E = 1). Returns the [E · rows, cols] view
     * (nothing copied) in which expert e is rows [e · rows, (e + 1) · rows) ({@link WeightMatrix#rowSlice}); rows
     * are output features and columns inputs, as the file holds them (transformers transposes after dequantizing).
     * Both tensors are marked consumed. A missing tensor, a dtype other than U8, shapes that disagree with
     * {@code rows} and {@code cols} or with each other, columns that are not whole groups of 32, or a config.json
     * whose quantization_config is not mxfp4 or excludes the module, is a {@link CheckpointException} naming the
     * tensor and its file.
     */
    public WeightMatrix mxfp4Matrix(String prefix, long rows, long cols) {
        return QuantizedWeights.mxfp4(this, prefix, rows, cols);
    }

    /** The file holding tensor {@code name}, for messages; null when there is none. */
    Path fileOf(String name) {
        SafetensorsFile f = byName.get(name);
        return f == null ? null : f.path();
    }

    /** The named tensor without marking it consumed, or null. */
    Tensor peek(String name) {
        SafetensorsFile f = byName.get(name);
        return f == null ? null : f.tensor(name);
    }

    /** Bytes of tensor data across all files (headers not counted). */
    public long totalBytes() {
        long total = 0;
        for (Map.Entry<String, SafetensorsFile> e : byName.entrySet()) {
            total += e.getValue().tensor(e.getKey()).data().byteSize();
        }
        return total;
    }

    /** Number of elements (parameters) per dtype; dtypes with none are absent. */
    public Map<DType, Long> parameterCountByDType() {
        Map<DType, Long> counts = new EnumMap<>(DType.class);
        for (Map.Entry<String, SafetensorsFile> e : byName.entrySet()) {
            Tensor t = e.getValue().tensor(e.getKey());
            counts.merge(t.dtype(), t.numElements(), Long::sum);
        }
        return Collections.unmodifiableMap(counts);
    }

    /** Names never returned by {@link #tensor} or {@link #find}, sorted. */
    public Set<String> unconsumed() {
        return byName.keySet().stream()
                .filter(n -> !consumed.contains(n))
                .collect(Collectors.toCollection(TreeSet::new));
    }

    /**
     * Throws when a tensor was never consumed and no pattern in {@code ignored} matches it; a pattern matches
     * when it is found anywhere in the name ({@link java.util.regex.Matcher#find()}, like transformers'
     * {@code re.search} for keys to ignore), so anchor it with {@code ^...$} for whole names.
     */
    public void requireAllConsumed(List<Pattern> ignored) {
        requireAllConsumed(ignored, null);
    }

    /** As {@link #requireAllConsumed(List)}, naming in the message the {@code consumer} (e.g. the architecture). */
    public void requireAllConsumed(List<Pattern> ignored, String consumer) {
        List<String> unexpected = new ArrayList<>();
        for (String name : unconsumed()) {
            if (ignored.stream().noneMatch(p -> p.matcher(name).find())) unexpected.add(name);
        }
        if (unexpected.isEmpty()) return;
        StringBuilder msg = new StringBuilder("unexpected tensor(s) in checkpoint " + directory + ":");
        for (String name : unexpected.subList(0, Math.min(MAX_LISTED, unexpected.size()))) {
            msg.append("\n  ").append(name).append(" (in ").append(byName.get(name).path().getFileName()).append(')');
        }
        if (unexpected.size() > MAX_LISTED) {
            msg.append("\n  ... and ").append(unexpected.size() - MAX_LISTED).append(" more");
        }
        msg.append("\n").append(unexpected.size()).append(" tensor(s) not used");
        if (consumer != null) msg.append(" by ").append(consumer);
        msg.append("; a wrong architecture, a renamed weight, or weights to add to the ignore list?");
        throw new CheckpointException(msg.toString());
    }

    /** Unmaps every file; tensors handed out before become unreadable. Idempotent. */
    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}

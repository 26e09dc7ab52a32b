package io.moeserve.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes one {@code .safetensors} file in exactly the layout of the Python {@code safetensors} library.
 *
 * <p>Layout: 8-byte little-endian header length, compact JSON header ({@code __metadata__} first, then one entry
 * per tensor with dtype, shape and data_offsets), padded with spaces to a multiple of 8 bytes, then the tensor
 * bytes back to back with no gaps (the reference reader rejects gaps). Tensors are ordered by name, so the same
 * tensors always give the same bytes.
 *
 * <p>The file is sized and mapped read-write in one piece, and each tensor's filler writes straight into its
 * slice of the mapping: a multi-GiB checkpoint is produced without any heap copy, and regions no filler touches
 * stay holes in a sparse file. A filler that throws leaves no file behind.
 */
final class SafetensorsWriter {

    /** What transformers puts in every checkpoint it saves from PyTorch. */
    public static final Map<String, String> DEFAULT_METADATA = Map.of("format", "pt");

    private static final ValueLayout.OfLong U64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    private SafetensorsWriter() {}

    /** Writes {@code tensors} with the default metadata {@code {"format": "pt"}}. */
    public static void write(Path file, List<TensorSpec> tensors) {
        write(file, tensors, Map.of());
    }

    /**
     * Writes {@code tensors} to {@code file} (replacing it). {@code extraMetadata} is added to the default
     * {@code {"format": "pt"}} (and may override it).
     */
    public static void write(Path file, List<TensorSpec> tensors, Map<String, String> extraMetadata) {
        List<TensorSpec> sorted = tensors.stream().sorted(Comparator.comparing(TensorSpec::name)).toList();
        checkNames(file, sorted);
        Map<String, String> metadata = new LinkedHashMap<>(DEFAULT_METADATA);
        metadata.putAll(extraMetadata);
        byte[] header = header(sorted, metadata);
        long dataBytes = 0;
        for (TensorSpec t : sorted) dataBytes = Math.addExact(dataBytes, t.byteSize());
        long total = 8 + header.length + dataBytes;

        boolean done = false;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            // Mapping past the end grows the file; the bytes not yet written are holes that read as zero.
            MemorySegment out = channel.map(FileChannel.MapMode.READ_WRITE, 0, total, arena);
            out.set(U64_LE, 0, header.length);
            MemorySegment.copy(header, 0, out, ValueLayout.JAVA_BYTE, 8, header.length);
            long offset = 8 + header.length;
            for (TensorSpec t : sorted) {
                t.filler().fill(out.asSlice(offset, t.byteSize()));
                offset += t.byteSize();
            }
            done = true;
        } catch (IOException e) {
            throw new CheckpointException("cannot write " + file + ": " + e, e);
        } finally {
            if (!done) deleteQuietly(file);
        }
    }

    private static void checkNames(Path file, List<TensorSpec> sorted) {
        Set<String> seen = new HashSet<>();
        for (TensorSpec t : sorted) {
            if (t.name().equals(SafetensorsHeader.METADATA_KEY)) {
                throw new IllegalArgumentException("cannot write " + file + ": \"" + SafetensorsHeader.METADATA_KEY
                        + "\" is reserved and cannot name a tensor");
            }
            if (!seen.add(t.name())) {
                throw new IllegalArgumentException("cannot write " + file + ": tensor " + t.name()
                        + " is given twice");
            }
        }
    }

    /** The header JSON, padded with spaces to a multiple of 8 bytes as the reference writer does. */
    private static byte[] header(List<TensorSpec> sorted, Map<String, String> metadata) {
        ObjectNode root = MAPPER.createObjectNode();
        ObjectNode meta = root.putObject(SafetensorsHeader.METADATA_KEY);
        metadata.forEach(meta::put);
        long offset = 0;
        for (TensorSpec t : sorted) {
            ObjectNode entry = root.putObject(t.name());
            entry.put("dtype", t.dtype().safetensorsName());
            ArrayNode shape = entry.putArray("shape");
            Arrays.stream(t.shape()).forEach(shape::add);
            entry.putArray("data_offsets").add(offset).add(offset + t.byteSize());
            offset += t.byteSize();
        }
        byte[] json;
        try {
            json = MAPPER.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise a safetensors header", e);
        }
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static void deleteQuietly(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // The original failure is what the caller needs to see; a leftover partial file is secondary.
        }
    }
}

package io.moeserve.runtime.checkpoint;

import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * One {@code .safetensors} file, memory-mapped read-only, whose tensors are zero-copy views of the mapping.
 *
 * <p>Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data region; every tensor's
 * {@code data_offsets} are relative to the start of that region (byte 8 + N). The whole file is mapped once as a
 * single {@link MemorySegment}: segments are 64-bit addressed, so this works for files far beyond 2 GiB without
 * the ByteBuffer splitting that int-indexed buffers force, and nothing is read until a kernel touches it: the
 * page cache does the loading, and several processes serving the same checkpoint share it.
 *
 * <p>The mapping lives in a shared arena owned by this object (shared because kernels read tensors from many
 * threads). {@link #close()} unmaps it; tensors handed out before become invalid, and reading them then fails
 * with {@link IllegalStateException} instead of touching unmapped memory.
 */
final class SafetensorsFile implements AutoCloseable {

    /** The same limit as the reference implementation: a larger header is a corrupt or foreign file. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final ValueLayout.OfLong U64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment dataRegion;
    private final Map<String, String> metadata;
    private final Map<String, TensorEntry> entries;
    private boolean closed;

    private SafetensorsFile(Path path, Arena arena, MemorySegment dataRegion, SafetensorsHeader header) {
        this.path = path;
        this.arena = arena;
        this.dataRegion = dataRegion;
        this.metadata = header.metadata();
        Map<String, TensorEntry> byName = new LinkedHashMap<>();
        for (TensorEntry e : header.tensors()) byName.put(e.name(), e);
        this.entries = Collections.unmodifiableMap(byName);
    }

    /** Maps {@code file} and validates its whole header; throws {@link CheckpointException} naming what is wrong. */
    public static SafetensorsFile open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new CheckpointException(file + " is not a safetensors file: it holds " + size
                        + " bytes, fewer than the 8-byte header length");
            }
            MemorySegment mapping = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerBytes = mapping.get(U64_LE, 0);
            if (headerBytes <= 0 || headerBytes > MAX_HEADER_BYTES) {
                throw new CheckpointException(file + " is not a safetensors file: its header length "
                        + Long.toUnsignedString(headerBytes) + " is outside 1.." + MAX_HEADER_BYTES);
            }
            if (8 + headerBytes > size) {
                throw new CheckpointException(file + " is not a safetensors file or has a truncated header: the "
                        + "header length says " + headerBytes + " bytes but the file holds only " + (size - 8)
                        + " after the length");
            }
            byte[] json = mapping.asSlice(8, headerBytes).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = mapping.asSlice(8 + headerBytes);
            SafetensorsHeader header = SafetensorsHeader.parse(file, json, data.byteSize());
            return new SafetensorsFile(file, arena, data, header);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new CheckpointException(file + " does not exist", e);
        } catch (IOException e) {
            arena.close();
            throw new CheckpointException("cannot read " + file + ": " + e, e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    /** The {@code __metadata__} strings, in header order; empty when the file has none. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Tensor names in header order. */
    public Set<String> tensorNames() {
        return entries.keySet();
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The named tensor as a view of the mapping (no bytes are read or copied). */
    public Tensor tensor(String name) {
        if (closed) throw new IllegalStateException(path + " is closed");
        TensorEntry e = entries.get(name);
        if (e == null) throw new CheckpointException("no tensor " + name + " in " + path);
        // A fresh shape array per call: Tensor exposes its array, and one caller must not reshape another's view.
        return new Tensor(name, e.dtype(), e.shape().clone(), dataRegion.asSlice(e.begin(), e.byteSize()), path);
    }

    /** Unmaps the file; idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        arena.close();
    }
}

package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.CheckpointException;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigException;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A damaged or mismatched checkpoint fails to load with an error that names the file and the tensor. */
class CheckpointValidationTest {
    @TempDir
    Path tmp;

    @Test
    void anUnexpectedTensorIsNamed() throws IOException {
        Path dir = rewrite(Architecture.MIXTRAL, specs -> {
            specs.add(TensorSpec.ofFloats("model.layers.0.mlp.surprise.weight", io.moeserve.runtime.tensor.DType.F32,
                    new long[] {2}, new float[] {1, 2}));
            return specs;
        });
        var e = assertThrows(CheckpointException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains("model.layers.0.mlp.surprise.weight"), e.getMessage());
    }

    @Test
    void aMissingTensorIsNamed() throws IOException {
        String victim = "model.layers.1.block_sparse_moe.experts.3.w2.weight";
        Path dir = rewrite(Architecture.MIXTRAL, specs -> {
            specs.removeIf(s -> s.name().equals(victim));
            return specs;
        });
        var e = assertThrows(CheckpointException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains(victim), e.getMessage());
    }

    @Test
    void aWronglyShapedTensorIsNamedWithBothShapes() throws IOException {
        String victim = "model.layers.0.self_attn.q_proj.weight";
        Path dir = rewrite(Architecture.QWEN3_MOE, specs -> {
            List<TensorSpec> out = new ArrayList<>();
            for (TensorSpec s : specs) {
                if (s.name().equals(victim)) {
                    long[] shape = s.shape();
                    shape[0] -= 2;
                    out.add(TensorSpec.ofFloats(victim, s.dtype(), shape, new float[(int) (shape[0] * shape[1])]));
                } else {
                    out.add(s);
                }
            }
            return out;
        });
        var e = assertThrows(CheckpointException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains(victim) && e.getMessage().contains("expected"), e.getMessage());
    }

    @Test
    void aTruncatedFileIsNamed() throws IOException {
        Path dir = copyOf(TinyModels.checkpoint(Architecture.OLMOE), "truncated");
        Path file;
        try (Stream<Path> files = Files.list(dir)) {
            file = files.filter(p -> p.toString().endsWith(".safetensors")).findFirst().orElseThrow();
        }
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(raf.length() - 100);
        }
        var e = assertThrows(CheckpointException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains(file.getFileName().toString()) && e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void anUnsupportedArchitectureIsNamed() throws IOException {
        Path dir = copyOf(TinyModels.checkpoint(Architecture.MIXTRAL), "arch");
        String config = Files.readString(dir.resolve("config.json")).replace("MixtralForCausalLM", "JambaForCausalLM");
        Files.writeString(dir.resolve("config.json"), config);
        var e = assertThrows(ConfigException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains("JambaForCausalLM") && e.getMessage().contains("config.json"), e.getMessage());
    }

    /** Re-writes the tiny checkpoint of an architecture with its tensor list edited. */
    private Path rewrite(Architecture arch, UnaryOperator<List<TensorSpec>> edit) throws IOException {
        Path source = TinyModels.checkpoint(arch);
        Path dir = copyOf(source, "edited-" + arch);
        try (Checkpoint ck = Checkpoint.open(source)) {
            List<TensorSpec> specs = new ArrayList<>();
            for (String name : ck.names()) {
                Tensor t = ck.tensor(name);
                float[] values = t.toFloatArray();
                specs.add(TensorSpec.ofFloats(name, t.dtype(), t.shape(), values));
            }
            ShardedCheckpointWriter.write(dir, edit.apply(specs), 1L << 40);
        }
        return dir;
    }

    private Path copyOf(Path source, String name) throws IOException {
        Path dir = tmp.resolve(name);
        Files.createDirectories(dir);
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) Files.copy(f, dir.resolve(f.getFileName()));
        }
        return dir;
    }
}

package io.moeserve.runtime.checkpoint;

import io.moeserve.runtime.checkpoint.QuantizationConfig.Scheme;
import io.moeserve.runtime.kernel.PanelKernel;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

/**
 * Reads one linear layer's weight as the checkpoint stores it: float, or quantized codes with their scales and zero
 * points ({@link QuantizationConfig}). The config says what may be quantized, the tensors say what is: a layer the
 * config quantizes may still be stored in a float dtype (then it is read as such), but a layer stored quantized that
 * the config leaves in float (ignored, or matched by no target), codes without their scale, a scale or zero point of
 * the wrong shape or dtype, or float scales beside a float weight, are errors naming the tensor and its file.
 * Everything is a view of the mapped file: nothing is copied or converted at load.
 */
final class QuantizedWeights {

    /** Companions a quantized weight {@code P.weight} may have, by suffix of its name. */
    private static final List<String> COMPANIONS = List.of("_packed", "_scale", "_scale_inv", "_zero_point", "_shape", "_g_idx");

    private QuantizedWeights() {}

    static WeightMatrix matrix(Checkpoint ck, String name, long rows, long cols) {
        String module = name.endsWith(".weight") ? name.substring(0, name.length() - ".weight".length()) : name;
        QuantizationConfig config = ck.quantization();
        Scheme scheme = config.schemeFor(module);
        Tensor plain = ck.peek(name);
        if (scheme == null || (plain != null && plain.dtype().isFloat())) {
            for (String suffix : COMPANIONS) {
                String companion = name + suffix;
                if (!ck.contains(companion)) continue;
                String why = plain != null && plain.dtype().isFloat()
                        ? "but " + name + " itself is stored as " + plain.dtype()
                        : config.ignores(module) ? "but quantization_config lists " + module + " among the modules it ignores"
                        : config.isQuantized() ? "but no target of quantization_config matches " + module
                        : "but config.json has no quantization_config";
                throw new CheckpointException("tensor " + companion + " in " + ck.fileOf(companion)
                        + " quantizes " + module + ", " + why);
            }
            if (plain != null && !plain.dtype().isFloat()) {
                throw new CheckpointException("tensor " + name + " in " + ck.fileOf(name) + " is stored as " + plain.dtype()
                        + ", but " + (config.ignores(module) ? "quantization_config lists " + module + " among the"
                        + " modules it ignores" : config.isQuantized() ? "no target of quantization_config matches " + module
                        : "config.json has no quantization_config") + "; it cannot be read as float weights");
            }
            return ck.tensor(name, rows, cols).asMatrix();
        }
        int r = Math.toIntExact(rows);
        int c = Math.toIntExact(cols);
        int br = scheme.blockRows() == 0 ? r : scheme.blockRows();
        int bc = scheme.blockCols() == 0 ? c : scheme.blockCols();
        if (ck.contains(name + "_g_idx")) {
            throw new CheckpointException("tensor " + name + "_g_idx in " + ck.fileOf(name + "_g_idx")
                    + ": activation ordering (a column permutation of " + module + ") is not supported");
        }
        Quantization.Scheme codes = scheme.codes();
        Tensor data;
        String scaleName = name + "_scale";
        switch (scheme.format()) {
            case FP8_BLOCK -> {
                data = typed(ck, name, DType.F8_E4M3, rows, cols);
                scaleName = name + "_scale_inv";
            }
            case FLOAT_QUANTIZED -> data = typed(ck, name, DType.F8_E4M3, rows, cols);
            case INT_QUANTIZED -> data = typed(ck, name, DType.I8, rows, cols);
            case PACK_QUANTIZED -> {
                int perWord = 32 / scheme.bits();
                data = typed(ck, name + "_packed", DType.I32, rows, (cols + perWord - 1) / perWord);
                Tensor shape = typed(ck, name + "_shape", DType.I32, 2);
                long shapeRows = shape.data().get(TensorAccess.I32_LE, 0);
                long shapeCols = shape.data().get(TensorAccess.I32_LE, 4);
                if (shapeRows != rows || shapeCols != cols) {
                    throw new CheckpointException("tensor " + name + "_shape in " + ck.fileOf(name + "_shape") + " says "
                            + shapeRows + "x" + shapeCols + ", expected " + rows + "x" + cols);
                }
            }
            default -> throw new IllegalStateException("unknown format " + scheme.format());
        }
        if (!ck.contains(scaleName)) {
            throw new CheckpointException("missing tensor " + scaleName + " in checkpoint " + ck.directory() + ": "
                    + data.name() + " in " + data.file() + " holds " + scheme.description() + " codes, which need it");
        }
        int scaleRows = (r + br - 1) / br;
        int scaleCols = (c + bc - 1) / bc;
        Tensor scale = ck.tensor(scaleName);
        if (!scale.dtype().isFloat() || scale.numElements() != (long) scaleRows * scaleCols
                || (scale.rank() == 2 && (scale.shape()[0] != scaleRows || scale.shape()[1] != scaleCols))
                || scale.rank() > 2 || (scale.rank() < 2 && scaleRows * (long) scaleCols != 1)) {
            throw new CheckpointException("tensor " + scaleName + " in " + ck.fileOf(scaleName) + " is " + scale.dtype()
                    + Arrays.toString(scale.shape()) + ", expected float scales of shape [" + scaleRows + ", " + scaleCols
                    + "] (" + scheme.description() + " of a " + rows + "x" + cols + " weight)");
        }
        MemorySegment zeroPoints = null;
        String zpName = name + "_zero_point";
        if (!scheme.symmetric()) {
            if (!ck.contains(zpName)) {
                throw new CheckpointException("missing tensor " + zpName + " in checkpoint " + ck.directory() + ": "
                        + scheme.description() + " needs zero points for " + module);
            }
            long[] expected = codes == Quantization.Scheme.INT8
                    ? new long[] {scaleRows, scaleCols}
                    : new long[] {(scaleRows + 32 / scheme.bits() - 1) / (32 / scheme.bits()), scaleCols};
            zeroPoints = typed(ck, zpName, codes == Quantization.Scheme.INT8 ? DType.I8 : DType.I32, expected).data();
        } else if (ck.contains(zpName)) {
            throw new CheckpointException("tensor " + zpName + " in " + ck.fileOf(zpName) + " gives zero points, but"
                    + " quantization_config says " + module + " is symmetric");
        }
        // Static activation scales belong to a w8a8 engine; weights-only dequantization does not read them.
        ck.find(module + ".input_scale");
        ck.find(module + ".input_zero_point");
        WeightMatrix matrix;
        try {
            matrix = new WeightMatrix(name, data.data(), codes.storage(), r, c,
                    new Quantization(codes, scale.data(), scale.dtype(), br, bc, zeroPoints));
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(module + " in " + data.file() + ": " + e.getMessage(), e);
        }
        return ck.int8Activations() || scheme.int8Activations() ? repack(matrix) : matrix;
    }

    /**
     * The matrix with panels for int8 activations, where its layout allows. The panels hold the same information as
     * the codes and scales, so the mapped pages are dropped from this process's resident set ({@code unload}): the
     * products no longer read them (the page cache keeps them; a later read faults them back in).
     */
    private static WeightMatrix repack(WeightMatrix matrix) {
        WeightMatrix panels = PanelKernel.repack(matrix);
        if (panels == matrix) return matrix;
        if (matrix.data().isMapped()) matrix.data().unload();
        if (matrix.quantization().scales().isMapped()) matrix.quantization().scales().unload();
        return panels;
    }

    /** See {@link Checkpoint#mxfp4Matrix}. */
    static WeightMatrix mxfp4(Checkpoint ck, String prefix, long rows, long cols) {
        String blocksName = prefix + "_blocks", scalesName = prefix + "_scales";
        int block = Quantization.Scheme.MX_BLOCK;
        for (String name : new String[] {blocksName, scalesName}) {
            if (ck.contains(name)) continue;
            Tensor plain = ck.peek(prefix);
            throw new CheckpointException("missing tensor " + name + " in checkpoint " + ck.directory()
                    + (plain != null ? "; " + prefix + " is stored as " + plain.dtype() + " in " + ck.fileOf(prefix)
                    + ", not as MXFP4 blocks and scales" : ""));
        }
        Tensor blocks = ck.peek(blocksName);
        Tensor scales = ck.peek(scalesName);
        String module = prefix.contains(".") ? prefix.substring(0, prefix.lastIndexOf('.')) : prefix;
        QuantizationConfig config = ck.quantization();
        if (!config.isMxfp4() || !config.converts(module)) {
            throw new CheckpointException("tensor " + blocksName + " in " + ck.fileOf(blocksName) + " holds MXFP4 codes, but "
                    + (!config.isMxfp4() ? (config.isQuantized() ? "quantization_config's quant_method is not mxfp4"
                    : "config.json has no quantization_config") : "quantization_config's modules_to_not_convert names " + module));
        }
        if (cols % block != 0 || rows < 1 || cols < 1) {
            throw new CheckpointException("tensor " + blocksName + " in " + ck.fileOf(blocksName) + ": MXFP4 needs columns in whole"
                    + " groups of " + block + ", not a " + rows + "x" + cols + " weight");
        }
        long groups = cols / block;
        long[] b = blocks.shape(), s = scales.shape();
        long experts = b.length == 4 ? b[0] : 1;
        long[] blocksShape = b.length == 4 ? new long[] {experts, rows, groups, block / 2} : new long[] {rows, groups, block / 2};
        long[] scalesShape = b.length == 4 ? new long[] {experts, rows, groups} : new long[] {rows, groups};
        if (blocks.dtype() != DType.U8 || !Arrays.equals(b, blocksShape) || experts < 1) {
            throw new CheckpointException("tensor " + blocksName + " in " + ck.fileOf(blocksName) + " is " + blocks.dtype()
                    + Arrays.toString(b) + ", expected U8 [experts, " + rows + ", " + groups + ", " + block / 2 + "] or U8 ["
                    + rows + ", " + groups + ", " + block / 2 + "] (MXFP4 codes of a " + rows + "x" + cols + " weight)");
        }
        if (scales.dtype() != DType.U8 || !Arrays.equals(s, scalesShape)) {
            throw new CheckpointException("tensor " + scalesName + " in " + ck.fileOf(scalesName) + " is " + scales.dtype()
                    + Arrays.toString(s) + ", expected U8 " + Arrays.toString(scalesShape) + " (E8M0 scales of "
                    + blocksName + " " + Arrays.toString(b) + ")");
        }
        if (experts * rows > Integer.MAX_VALUE) {
            throw new CheckpointException("tensor " + blocksName + " in " + ck.fileOf(blocksName) + " has " + experts * rows
                    + " rows in all, more than one matrix can index");
        }
        ck.tensor(blocksName, blocksShape);
        ck.tensor(scalesName, scalesShape);
        return new WeightMatrix(prefix, blocks.data(), DType.U8, (int) (experts * rows), Math.toIntExact(cols),
                new Quantization(Quantization.Scheme.MXFP4, scales.data(), DType.U8, 1, block, null));
    }

    /** The tensor {@code name}: present, of {@code dtype}, of {@code shape}. */
    private static Tensor typed(Checkpoint ck, String name, DType dtype, long... shape) {
        Tensor t = ck.tensor(name, shape);
        if (t.dtype() != dtype) {
            throw new CheckpointException("tensor " + name + " in " + ck.fileOf(name) + " is " + t.dtype() + ", expected "
                    + dtype + " as its quantization_config says");
        }
        return t;
    }
}

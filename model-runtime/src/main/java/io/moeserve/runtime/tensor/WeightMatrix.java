package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix as {@code nn.Linear} stores it: [rows = out_features, cols = in_features], row-major. The product
 * is {@code y = x · Wᵀ}. The bytes stay where they are (usually mapped from disk): a float dtype (F32, BF16, F16)
 * read directly, or quantized codes with their scales ({@link Quantization}; then {@code dtype} is the codes'
 * storage dtype).
 *
 * @param quantization how to turn the stored codes into weights, or null for a float dtype
 * @param panels       the codes repacked for products with int8 activations ({@link RowPanels}), or null: then the
 *                     kernels dequantize every weight exactly. Set only when a model is loaded with int8 activations
 */
public record WeightMatrix(String name, MemorySegment data, DType dtype, int rows, int cols, Quantization quantization,
                           RowPanels panels) {

    public WeightMatrix {
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException(name + ": empty matrix " + rows + "x" + cols);
        if (panels != null && quantization == null) throw new IllegalArgumentException(name + ": float weights have no panels");
        if (quantization == null) {
            if (!dtype.isFloat()) throw new IllegalArgumentException(name + ": " + dtype + " weights need scales");
            if (data.byteSize() != (long) rows * cols * dtype.byteSize()) {
                throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes for " + rows + "x" + cols
                        + " " + dtype);
            }
        } else {
            Quantization.Scheme scheme = quantization.scheme();
            if (scheme == Quantization.Scheme.MXFP4 && cols % Quantization.Scheme.MX_BLOCK != 0) {
                throw new IllegalArgumentException(name + ": MXFP4 needs a multiple of " + Quantization.Scheme.MX_BLOCK
                        + " columns, not " + cols);
            }
            if (dtype != scheme.storage()) {
                throw new IllegalArgumentException(name + ": " + scheme + " codes are stored as " + scheme.storage()
                        + ", not " + dtype);
            }
            if (data.byteSize() != rows * scheme.rowBytes(cols)) {
                throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes for " + rows + "x" + cols
                        + " " + scheme + " codes, expected " + rows * scheme.rowBytes(cols));
            }
            if (quantization.scales().byteSize() != quantization.scaleBytes(rows, cols)) {
                throw new IllegalArgumentException(name + ": " + quantization.scales().byteSize() + " bytes of scales for "
                        + rows + "x" + cols + " in blocks of " + quantization.blockRows() + "x"
                        + quantization.blockCols() + ", expected " + quantization.scaleBytes(rows, cols));
            }
            MemorySegment zp = quantization.zeroPoints();
            if (zp != null && zp.byteSize() != quantization.zeroPointBytes(rows, cols)) {
                throw new IllegalArgumentException(name + ": " + zp.byteSize() + " bytes of zero points, expected "
                        + quantization.zeroPointBytes(rows, cols));
            }
        }
    }

    /** A matrix of a float dtype. */
    public WeightMatrix(String name, MemorySegment data, DType dtype, int rows, int cols) {
        this(name, data, dtype, rows, cols, null, null);
    }

    /** A matrix without panels: products dequantize its weights exactly. */
    public WeightMatrix(String name, MemorySegment data, DType dtype, int rows, int cols, Quantization quantization) {
        this(name, data, dtype, rows, cols, quantization, null);
    }

    /** This matrix with its codes also repacked as {@code rowPanels} (products then use int8 activations). */
    public WeightMatrix withPanels(RowPanels rowPanels) {
        if (quantization == null) throw new IllegalArgumentException(name + ": float weights have no panels");
        return new WeightMatrix(name, data, dtype, rows, cols, quantization, rowPanels);
    }

    /** Whether the weights are quantized codes (as opposed to a float dtype read directly). */
    public boolean isQuantized() {
        return quantization != null;
    }

    /**
     * The storage format in a few characters, for pods' reports and {@code moe inspect}: the dtype of a float
     * matrix ({@code BF16}), or the codes and scale blocks of a quantized one ({@code int4 1x128},
     * {@code fp8 128x128}; {@code +zp} when it has zero points); {@code mxfp4}, whose blocks are always 1x32.
     */
    public String formatName() {
        if (quantization == null) return dtype.safetensorsName();
        String codes = switch (quantization.scheme()) {
            case E4M3 -> "fp8";
            case INT8, PACKED_INT8 -> "int8";
            case PACKED_INT4 -> "int4";
            case PACKED_INT3 -> "int3";
            case PACKED_INT2 -> "int2";
            case MXFP4 -> "mxfp4";
        };
        if (quantization.scheme() == Quantization.Scheme.MXFP4) return codes;
        return codes + " " + quantization.blockRows() + "x" + quantization.blockCols()
                + (quantization.zeroPoints() == null ? "" : " +zp");
    }

    /** Bytes one stored row takes (codes only, for a quantized matrix). */
    public long rowBytes() {
        return quantization == null ? (long) cols * dtype.byteSize() : quantization.scheme().rowBytes(cols);
    }

    /**
     * Rows [from, from + count) as a matrix of their own (a view, no copy). A quantized matrix can be cut only at a
     * boundary of its scale blocks (and of its packed zero points), where the slice's blocks are whole blocks of
     * the original. The slice has no panels: its products dequantize exactly.
     */
    public WeightMatrix rowSlice(String sliceName, int from, int count) {
        long rowBytes = rowBytes();
        MemorySegment codes = data.asSlice(from * rowBytes, count * rowBytes);
        if (quantization == null) return new WeightMatrix(sliceName, codes, dtype, count, cols);
        Quantization q = quantization;
        int br = q.blockRows();
        boolean endsAtBlock = (from + count) % br == 0 || from + count == rows;
        int zpRowsPerWord = q.zeroPoints() == null || q.scheme() == Quantization.Scheme.INT8 ? 1 : 32 / q.scheme().bits();
        boolean zpAligned = (from / br) % zpRowsPerWord == 0;
        if (from % br != 0 || !endsAtBlock || !zpAligned) {
            throw new IllegalArgumentException(name + ": rows " + from + ".." + (from + count) + " cut through its "
                    + br + "-row scale blocks" + (zpAligned ? "" : " or packed zero points"));
        }
        int sc = q.scaleColumns(cols);
        long scaleRowBytes = (long) sc * q.scaleType().byteSize();
        MemorySegment scales = q.scales().asSlice(from / br * scaleRowBytes, q.scaleRows(count) * scaleRowBytes);
        MemorySegment zp = null;
        if (q.zeroPoints() != null) {
            long zpRowBytes = q.scheme() == Quantization.Scheme.INT8 ? sc : 4L * sc;
            long firstRow = (from / br) / zpRowsPerWord;
            long zpRows = (q.scaleRows(count) + zpRowsPerWord - 1) / zpRowsPerWord;
            zp = q.zeroPoints().asSlice(firstRow * zpRowBytes, zpRows * zpRowBytes);
        }
        return new WeightMatrix(sliceName, codes, dtype, count, cols,
                new Quantization(q.scheme(), scales, q.scaleType(), br, q.blockCols(), zp));
    }

    /** Bytes the matrix holds: weights or codes, plus scales and zero points. */
    public long byteSize() {
        if (quantization == null) return data.byteSize();
        long zp = quantization.zeroPoints() == null ? 0 : quantization.zeroPoints().byteSize();
        return data.byteSize() + quantization.scales().byteSize() + zp;
    }

    /** The weight in row {@code row}, column {@code col}, dequantized by the format's formula (scalar path). */
    public float get(int row, int col) {
        if (quantization == null) return TensorAccess.getFloat(data, dtype, (long) row * cols + col);
        return quantization.weight(data, cols, row, col);
    }
}

package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The CPU backend: Vector API kernels that read weights in place (F32, BF16, F16) and split work over a
 * {@link Parallel} pool.
 *
 * <p>n = 1 goes to {@link MatvecKernel} (memory-bound: stream each weight once), 2 to 8 tokens to
 * {@link SmallBatchKernel} (still memory-bound: widen in registers, use each weight vector for 4 tokens), more to
 * {@link GemmKernel} (compute-bound: register-blocked tiles over packed panels); the last two give a token the same
 * bits, so its result does not depend on how many tokens share its product. Work is split into one contiguous share
 * per pool thread, by groups of 4 rows, or by groups of 4 tokens when a matrix has too few rows to go round. Small products
 * (router gates, tiny experts) run on the calling thread: waking the pool would cost more than it saves. Weights
 * whose memory segment is confined to the calling thread run there too, since pool threads may not touch them.
 *
 * <p>Per call nothing is allocated: the task handed to the pool is one preallocated object whose fields hold the
 * call's arguments, and each thread's GEMM scratch is kept between calls. As {@link MatmulKernels} says, an
 * instance serves one caller at a time; a second, concurrent caller is detected with one compare-and-set and
 * computed on its own thread with its own (newly allocated) scratch, so misuse is slow but never wrong.
 */
public final class CpuMatmulKernels implements MatmulKernels {

    /** Below this many weight bytes a matrix-vector product runs on the calling thread. */
    static final long PARALLEL_MIN_BYTES = 192 * 1024;
    /** Below this many multiply-adds a matrix-matrix product runs on the calling thread. */
    static final long PARALLEL_MIN_MACS = 256 * 1024;

    // An unstarted thread that owns nothing: a segment it may access is one that any pool thread may access.
    private static final Thread FOREIGN_THREAD = Thread.ofPlatform().unstarted(() -> { });

    private final Parallel parallel;
    private final AtomicBoolean busy = new AtomicBoolean();
    private final Call call;
    private final BatchCall batchCall = new BatchCall();

    /** Kernels on the process-wide pool, {@link Parallel#shared()}. */
    public CpuMatmulKernels() {
        this(Parallel.shared());
    }

    /** Kernels that split their work over {@code parallel}. */
    public CpuMatmulKernels(Parallel parallel) {
        this.parallel = parallel;
        this.call = new Call(parallel.threads());
    }

    @Override
    public void matmul(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int n) {
        if (n < 0) throw new IllegalArgumentException("n must not be negative, got " + n);
        checkRange("x", x.length, xOffset, (long) n * w.cols());
        checkRange("y", y.length, yOffset, (long) n * w.rows());
        if (n == 0) return;
        if (!busy.compareAndSet(false, true)) {
            new Call(1).execute(w, x, xOffset, y, yOffset, n, false);
            return;
        }
        try {
            call.execute(w, x, xOffset, y, yOffset, n, true);
        } finally {
            busy.set(false);
        }
    }

    /**
     * For one token, fused: each thread computes its rows of the gate and up projections and their SwiGLU, so the
     * element-wise step runs in parallel and the pool is called once instead of twice. The same bits as the
     * default's.
     */
    @Override
    public void swiglu(WeightMatrix gate, WeightMatrix up, float[] x, int xOffset, float[] h, int hOffset,
                       float[] scratch, int scratchOffset, int n) {
        if (n != 1 || gate.dtype() != up.dtype() || gate.rows() != up.rows() || gate.cols() != up.cols()) {
            MatmulKernels.super.swiglu(gate, up, x, xOffset, h, hOffset, scratch, scratchOffset, n);
            return;
        }
        checkRange("x", x.length, xOffset, gate.cols());
        checkRange("h", h.length, hOffset, gate.rows());
        checkRange("scratch", scratch.length, scratchOffset, gate.rows());
        if (!busy.compareAndSet(false, true)) {
            new Call(1).executeSwiglu(gate, up, x, xOffset, h, hOffset, scratch, scratchOffset, false);
            return;
        }
        try {
            call.executeSwiglu(gate, up, x, xOffset, h, hOffset, scratch, scratchOffset, true);
        } finally {
            busy.set(false);
        }
    }

    /**
     * One parallel call for the whole batch: each thread takes the same share of every product's rows (and of the
     * SwiGLU of a pair), so small products that would each cost a fork and join, and leave a thread idle at its
     * end, share one.
     */
    @Override
    public void run(MatvecBatch batch) {
        for (int i = 0; i < batch.size; i++) {
            WeightMatrix w = batch.weights[i];
            checkRange("x", batch.xs[i].length, batch.xOffsets[i], w.cols());
            checkRange("y", batch.ys[i].length, batch.yOffsets[i], w.rows());
            if (batch.ups[i] != null) checkRange("scratch", batch.scratches[i].length, batch.scratchOffsets[i], w.rows());
        }
        if (batch.size == 0) return;
        if (!busy.compareAndSet(false, true)) {
            MatmulKernels.super.run(batch);
            return;
        }
        try {
            batchCall.execute(batch);
        } finally {
            busy.set(false);
        }
    }

    @Override
    public String name() {
        return "cpu-vector" + Simd.FLOATS.vectorBitSize() + "x" + parallel.threads();
    }

    /** Rows [rowFrom, rowTo) of a one-token product, with the kernel of the weights' dtype or quantization. */
    static void matvec(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int rowFrom, int rowTo) {
        if (w.isQuantized()) {
            QuantizedKernel.matvec(w, x, xOffset, y, yOffset, rowFrom, rowTo);
            return;
        }
        MemorySegment data = w.data();
        int cols = w.cols();
        switch (w.dtype()) {
            case F32 -> MatvecKernel.f32(data, cols, x, xOffset, y, yOffset, rowFrom, rowTo);
            case BF16 -> MatvecKernel.bf16(data, cols, x, xOffset, y, yOffset, rowFrom, rowTo);
            case F16 -> MatvecKernel.f16(data, cols, x, xOffset, y, yOffset, rowFrom, rowTo);
            default -> throw new IllegalArgumentException(w.name() + ": " + w.dtype() + " weights without scales");
        }
    }

    /**
     * One token's rows [rowFrom, rowTo) by the panel kernel when the matrix has panels (its input quantized into
     * {@code a} unless a already holds it), else by {@link #matvec}.
     */
    private static void product(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int rowFrom, int rowTo,
                                Int8Activations a) {
        if (w.panels() == null) {
            matvec(w, x, xOffset, y, yOffset, rowFrom, rowTo);
            return;
        }
        a.quantize(x, xOffset, w.cols());
        PanelKernel.matvec(w, a, y, yOffset, rowFrom, rowTo);
    }

    /** Rows per unit of a row split: whole panels when either matrix has them (up may be null). */
    private static int unitRows(WeightMatrix w, WeightMatrix up) {
        return w.panels() != null || (up != null && up.panels() != null) ? PanelKernel.HEIGHT : GemmKernel.ROWS;
    }

    private static Int8Activations activations(Int8Activations[] perSlot, int slot) {
        Int8Activations a = perSlot[slot];
        if (a == null) perSlot[slot] = a = new Int8Activations();
        a.forget();
        return a;
    }

    /** Whether pool threads may read the matrix: its codes, and its scales and zero points if it has them. */
    private static boolean shareable(WeightMatrix w) {
        if (!w.data().isAccessibleBy(FOREIGN_THREAD)) return false;
        if (w.quantization() == null) return true;
        MemorySegment zp = w.quantization().zeroPoints();
        return w.quantization().scales().isAccessibleBy(FOREIGN_THREAD) && (zp == null || zp.isAccessibleBy(FOREIGN_THREAD));
    }

    private static void checkRange(String array, int length, int offset, long count) {
        if (offset < 0 || count > length - (long) offset) {
            throw new IndexOutOfBoundsException(array + " needs " + count + " floats from offset " + offset
                    + " but has length " + length);
        }
    }

    /** One product in flight: its arguments, its split, and the per-slot GEMM and small-batch scratch. */
    private final class Call implements RangeTask {
        private final GemmKernel.Scratch[] scratch;
        private final float[][] smallBatchScratch;
        private final Int8Activations[] activations;
        private WeightMatrix weights;
        private int rows;
        private int cols;
        private float[] x;
        private int xOffset;
        private float[] y;
        private int yOffset;
        private int n;
        private boolean splitRows;
        private int units;
        private int slots;
        private int unitRows;
        // The fused SwiGLU's up projection and its output, or null for a plain product.
        private WeightMatrix up;
        private float[] upY;
        private int upYOffset;

        Call(int slots) {
            this.scratch = new GemmKernel.Scratch[slots];
            this.smallBatchScratch = new float[slots][];
            this.activations = new Int8Activations[slots];
        }

        void execute(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int n, boolean mayFork) {
            this.weights = w;
            this.rows = w.rows();
            this.cols = w.cols();
            this.x = x;
            this.xOffset = xOffset;
            this.y = y;
            this.yOffset = yOffset;
            this.n = n;
            unitRows = unitRows(w, up);
            int rowGroups = (rows + unitRows - 1) / unitRows;
            int tokenGroups = (n + GemmKernel.TOKENS - 1) / GemmKernel.TOKENS;
            boolean big = n == 1
                    ? w.byteSize() >= PARALLEL_MIN_BYTES
                    : (long) n * rows * cols >= PARALLEL_MIN_MACS;
            int threads = mayFork && big && shareable(w) ? parallel.threads() : 1;
            splitRows = rowGroups >= threads || rowGroups >= tokenGroups;
            units = splitRows ? rowGroups : tokenGroups;
            slots = Math.min(threads, Math.min(units, scratch.length));
            try {
                if (slots == 1) runSlot(0);
                else parallel.forRange(slots, this);
            } finally {
                // Drop references to the caller's arrays and weights.
                this.weights = null;
                this.x = null;
                this.y = null;
            }
        }

        /** One token's SwiGLU over gate and up: rows split as for a matrix-vector product (see the method above). */
        void executeSwiglu(WeightMatrix gate, WeightMatrix up, float[] x, int xOffset, float[] h, int hOffset,
                           float[] upOut, int upOffset, boolean mayFork) {
            this.up = up;
            this.upY = upOut;
            this.upYOffset = upOffset;
            try {
                execute(gate, x, xOffset, h, hOffset, 1, mayFork && shareable(up));
            } finally {
                this.up = null;
                this.upY = null;
            }
        }

        @Override
        public void run(int from, int to) {
            for (int slot = from; slot < to; slot++) runSlot(slot);
        }

        private void runSlot(int slot) {
            int first = (int) ((long) units * slot / slots);
            int end = (int) ((long) units * (slot + 1) / slots);
            int rowFrom = 0, rowTo = rows, tokenFrom = 0, tokenTo = n;
            if (splitRows) {
                rowFrom = first * unitRows;
                rowTo = Math.min(rows, end * unitRows);
            } else {
                tokenFrom = first * GemmKernel.TOKENS;
                tokenTo = Math.min(n, end * GemmKernel.TOKENS);
            }
            if (rowFrom >= rowTo || tokenFrom >= tokenTo) return;
            if (n == 1) {
                Int8Activations a = activations(activations, slot);
                product(weights, x, xOffset, y, yOffset, rowFrom, rowTo, a);
                if (up != null) {
                    product(up, x, xOffset, upY, upYOffset, rowFrom, rowTo, a);
                    VectorOps.swiglu(y, yOffset + rowFrom, upY, upYOffset + rowFrom, rowTo - rowFrom);
                }
                a.forget();
                return;
            }
            if (weights.panels() != null) {
                Int8Activations a = activations(activations, slot);
                PanelKernel.multiply(weights, x, xOffset, y, yOffset, rowFrom, rowTo, tokenFrom, tokenTo, a);
                a.forget();
                return;
            }
            // Quantized layouts without a small-batch kernel go to the packed GEMM, which dequantizes each row once
            // per block of tokens.
            boolean quantized = weights.isQuantized();
            if (n <= SmallBatchKernel.MAX_TOKENS && (!quantized || QuantizedSmallBatchKernel.handles(weights))) {
                float[] t = smallBatchScratch[slot];
                // Kept between calls; quantized weights need room for their scales, so it grows to the widest seen.
                int need = quantized ? QuantizedSmallBatchKernel.scratchLength(weights) : SmallBatchKernel.SCRATCH;
                if (t == null || t.length < need) smallBatchScratch[slot] = t = new float[need];
                if (quantized) {
                    QuantizedSmallBatchKernel.multiply(weights, x, xOffset, y, yOffset, rowFrom, rowTo, tokenFrom, tokenTo, t);
                } else {
                    SmallBatchKernel.multiply(weights.data(), weights.dtype(), rows, cols, x, xOffset, y, yOffset, rowFrom, rowTo,
                            tokenFrom, tokenTo, t);
                }
                return;
            }
            GemmKernel.Scratch s = scratch[slot];
            if (s == null) scratch[slot] = s = new GemmKernel.Scratch();
            GemmKernel.multiply(weights, x, xOffset, y, yOffset, rowFrom, rowTo, tokenFrom, tokenTo, s);
        }
    }

    /** A {@link MatvecBatch} in flight. */
    private final class BatchCall implements RangeTask {
        // Grown to the slots of the first call that needs them, then kept.
        private Int8Activations[] activations = new Int8Activations[0];
        private MatvecBatch batch;
        private int slots;

        void execute(MatvecBatch b) {
            long bytes = 0;
            boolean shareable = true;
            for (int i = 0; i < b.size; i++) {
                bytes += b.weights[i].byteSize() * (b.ups[i] == null ? 1 : 2);
                shareable &= shareable(b.weights[i]) && (b.ups[i] == null || shareable(b.ups[i]));
            }
            this.batch = b;
            this.slots = bytes >= PARALLEL_MIN_BYTES && shareable ? parallel.threads() : 1;
            if (activations.length < slots) activations = new Int8Activations[slots];
            try {
                if (slots == 1) runSlot(0);
                else parallel.forRange(slots, this);
            } finally {
                this.batch = null;
            }
        }

        @Override
        public void run(int from, int to) {
            for (int slot = from; slot < to; slot++) runSlot(slot);
        }

        private void runSlot(int slot) {
            MatvecBatch b = batch;
            // Products of one input (a token's experts) quantize it once.
            Int8Activations a = activations(activations, slot);
            for (int i = 0; i < b.size; i++) {
                WeightMatrix w = b.weights[i];
                WeightMatrix up = b.ups[i];
                int unit = unitRows(w, up);
                int units = (w.rows() + unit - 1) / unit;
                int rowFrom = (int) ((long) units * slot / slots) * unit;
                int rowTo = Math.min(w.rows(), (int) ((long) units * (slot + 1) / slots) * unit);
                if (rowFrom >= rowTo) continue;
                product(w, b.xs[i], b.xOffsets[i], b.ys[i], b.yOffsets[i], rowFrom, rowTo, a);
                if (up == null) continue;
                product(up, b.xs[i], b.xOffsets[i], b.scratches[i], b.scratchOffsets[i], rowFrom, rowTo, a);
                VectorOps.swiglu(b.ys[i], b.yOffsets[i] + rowFrom, b.scratches[i], b.scratchOffsets[i] + rowFrom, rowTo - rowFrom);
            }
            a.forget();
        }
    }
}

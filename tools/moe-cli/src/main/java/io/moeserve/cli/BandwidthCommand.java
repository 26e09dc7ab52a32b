package io.moeserve.cli;

import io.moeserve.runtime.kernel.MemoryBandwidth;
import io.moeserve.runtime.kernel.Parallel;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `moe bandwidth`: this machine's read bandwidth and FMA peak, the two ceilings every figure is measured against. */
@Command(name = "bandwidth", description = "Measure memory read bandwidth and float32 FMA peak with the compute threads.")
final class BandwidthCommand implements Callable<Integer> {
    @Option(names = "--threads", description = "Threads (default: all cores).")
    Integer threads;

    @Override
    public Integer call() {
        Parallel p = threads == null ? Parallel.shared() : new Parallel(threads);
        double bw = MemoryBandwidth.measureReadBandwidth(p, 1L << 30) * 1e9;
        double fma = MemoryBandwidth.measureFmaPeak(p) * 1e9;
        System.out.printf("threads %d: read bandwidth %.1f GB/s, float32 FMA peak %.1f GFLOP/s%n", p.threads(), bw / 1e9, fma / 1e9);
        return 0;
    }
}

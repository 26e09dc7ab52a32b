package io.moeserve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The `moe` command-line tool: inspect, generate, synthesise and benchmark MoE checkpoints. */
@Command(name = "moe", mixinStandardHelpOptions = true, version = "moe-serve 0.1.0",
        description = "Run Mixture-of-Experts checkpoints (Hugging Face format) on the CPU.",
        subcommands = {InspectCommand.class, GenerateCommand.class, SynthCommand.class, BenchCommand.class, BandwidthCommand.class,
                QuantizeCommand.class, TrainTokenizerCommand.class, EvalCommand.class, PruneCommand.class,
                MergeCommand.class})
public final class MoeCli implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (tests run commands through it in-process). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new MoeCli());
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            commandLine.getErr().println("error: " + ex.getMessage());
            if (System.getenv("MOE_DEBUG") != null) ex.printStackTrace(commandLine.getErr());
            return 1;
        });
        return cl;
    }
}

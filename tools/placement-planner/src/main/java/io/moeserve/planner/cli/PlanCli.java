package io.moeserve.planner.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code moe-plan}: expert placement planning and the day-long autoscaling simulation. */
@Command(name = "moe-plan", mixinStandardHelpOptions = true, version = "moe-plan 0.1.0",
        description = "Plans expert groups from the router's routing statistics, compares planners, simulates autoscaling.",
        subcommands = {PlanCommand.class, SimulateCommand.class, CompareCommand.class})
public final class PlanCli implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static int execute(String... args) {
        return new CommandLine(new PlanCli())
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    // a bad input is the user's to fix: say what, without a stack trace
                    cmd.getErr().println("error: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
                    return 1;
                })
                .execute(args);
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }
}

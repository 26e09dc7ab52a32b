import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.router.v1.SamplingParameters;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One greedy generation through a router (scripts/build-images.sh runs it against the router image, whose expert
 * calls go to the expert image): java -cp 'router-service/target/quarkus-app/lib/main/*' GenerateOnce.java HOST PORT N.
 * Prints the model and the generated token ids; exits 1 when fewer than N tokens come back.
 */
public class GenerateOnce {
    public static void main(String[] args) throws Exception {
        ManagedChannel channel = ManagedChannelBuilder.forAddress(args[0], Integer.parseInt(args[1])).usePlaintext().build();
        int n = Integer.parseInt(args[2]);
        try {
            var stub = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(120, TimeUnit.SECONDS);
            ModelDescription m = stub.describeModel(DescribeModelRequest.getDefaultInstance());
            GenerateRequest.Builder req = GenerateRequest.newBuilder().setModelId(m.getModelId()).setMaxNewTokens(n)
                    .setIgnoreEos(true).setSampling(SamplingParameters.newBuilder().setTemperature(0));
            for (int t : new int[] {11, 250, 3, 1999, 42, 7}) req.addPromptTokenIds(t);
            List<Integer> out = new ArrayList<>();
            stub.generate(req.build()).forEachRemaining(r -> out.addAll(r.getTokenIdsList()));
            System.out.println("model " + m.getModelId() + " (" + m.getArchitecture() + ", " + m.getNumExperts()
                    + " experts): generated " + out.size() + " tokens " + out);
            if (out.size() < n) System.exit(1);
        } finally {
            channel.shutdownNow();
        }
    }
}

package io.moeserve.gateway.router;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One router the gateway can send generations to: its channel, the generations in flight on it (for the
 * least-outstanding-requests choice) and whether it is ready (its last DescribeModel answered and its channel is not
 * failing).
 */
final class RouterTarget {
    /** host:port (an address of a dns:/// target, or a target as configured). */
    final String address;
    /** The dns:/// name:port it is an address of; null for a target configured as it is. */
    final String name;
    final ManagedChannel channel;
    final RouterServiceGrpc.RouterServiceStub stub;
    final AtomicInteger inFlight = new AtomicInteger();
    /** The address hashed, for prefix affinity's rendezvous hashing. */
    final long addressHash;
    /** The last probe answered, and no call has failed for want of the router since. Starts true: try it first. */
    private volatile boolean answered = true;
    private volatile String problem = "";

    RouterTarget(String address, ManagedChannel channel) {
        this(address, channel, null);
    }

    RouterTarget(String address, ManagedChannel channel, String name) {
        this.address = address;
        this.addressHash = RouterClient.mix(address.hashCode());
        this.name = name;
        this.channel = channel;
        this.stub = channel == null ? null : RouterServiceGrpc.newStub(channel);
    }

    /** Whether it is an address of dns:/// {@code name}. */
    boolean authority(String name) {
        return name.equals(this.name);
    }

    boolean ready() {
        return answered && (channel == null || channel.getState(false) != ConnectivityState.TRANSIENT_FAILURE);
    }

    void answered() {
        answered = true;
        problem = "";
    }

    void failed(String why) {
        answered = false;
        problem = why;
    }

    String problem() {
        return problem;
    }

    @Override
    public String toString() {
        return address + (ready() ? "" : " (not ready: " + problem + ")") + ", " + inFlight.get() + " in flight";
    }
}

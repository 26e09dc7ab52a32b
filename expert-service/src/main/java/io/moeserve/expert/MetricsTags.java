package io.moeserve.expert;

import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.config.MeterFilter;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.util.List;

/** Tags every metric of the pod with its expert group, the key per-group autoscaling selects on. */
public class MetricsTags {
    @Produces
    @Singleton
    MeterFilter groupTag(ExpertPodSettings settings) {
        return MeterFilter.commonTags(List.of(Tag.of("group", settings.group())));
    }
}

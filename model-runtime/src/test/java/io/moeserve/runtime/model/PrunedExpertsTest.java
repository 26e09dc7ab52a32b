package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import org.junit.jupiter.api.Test;

/** The run-time prune spec, and what a model refuses. (Its differential test is CheckpointPrunerTest's.) */
class PrunedExpertsTest {

    @Test
    void everyLayerAndOwnLayerEntriesAddUp() {
        PrunedExperts p = PrunedExperts.parse("*:3; 5:7,0,3");
        assertArrayEquals(new int[] {3}, p.forLayer(1, 8, 2));
        assertArrayEquals(new int[] {0, 3, 7}, p.forLayer(5, 8, 2));
        assertEquals("*:3;5:0,3,7", p.toString());
        assertTrue(PrunedExperts.parse(" ").isEmpty());
        assertNull(PrunedExperts.NONE.forLayer(0, 8, 2));
    }

    @Test
    void badSpecsAndImpossibleLayersAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> PrunedExperts.parse("3"));
        assertThrows(IllegalArgumentException.class, () -> PrunedExperts.parse("x:1"));
        assertThrows(IllegalArgumentException.class, () -> PrunedExperts.parse("1:-2"));
        assertThrows(IllegalArgumentException.class, () -> PrunedExperts.parse("*:8").forLayer(0, 8, 2));
        assertThrows(IllegalArgumentException.class, () -> PrunedExperts.parse("*:0,1,2,3,4,5,6").forLayer(0, 8, 2));
    }

    @Test
    void aModelRefusesToPruneWhatItCannot() {
        IllegalArgumentException noLayer = assertThrows(IllegalArgumentException.class, () -> MoeModel.load(
                TinyModels.checkpoint(Architecture.MIXTRAL), TinyModels.options(8).withPrunedExperts(PrunedExperts.parse("99:1"))));
        assertTrue(noLayer.getMessage().contains("no MoE layer"), noLayer.getMessage());
        IllegalArgumentException moePlusPlus = assertThrows(IllegalArgumentException.class, () -> MoeModel.load(
                TinyModels.checkpoint(Architecture.MOE_PLUS_PLUS), TinyModels.options(8).withPrunedExperts(PrunedExperts.parse("*:1"))));
        assertTrue(moePlusPlus.getMessage().contains("cannot prune"), moePlusPlus.getMessage());
    }
}

package io.moeserve.runtime.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import org.junit.jupiter.api.Test;

class ExpertSetTest {

    @Test
    void allOfEverything() {
        ExpertSet s = ExpertSet.parse("*");
        assertTrue(s.hosts(0, 0));
        assertTrue(s.hosts(31, 255));
        assertEquals("*:*", s.spec());
    }

    @Test
    void rangesListsAndEntries() {
        ExpertSet s = ExpertSet.parse(" 0-7 : * ; 8-15 : 0,2,5-6 ");
        assertTrue(s.hosts(3, 100));
        assertTrue(s.hosts(8, 0));
        assertTrue(s.hosts(15, 6));
        assertFalse(s.hosts(8, 1));
        assertFalse(s.hosts(8, 7));
        assertFalse(s.hosts(16, 0));
        assertEquals("0-7:*;8-15:0,2,5-6", s.spec());
    }

    @Test
    void badSpecsNameTheirFault() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("")).getMessage().contains("empty"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("0-3")).getMessage().contains("LAYERS:EXPERTS"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("*:3-1")).getMessage().contains("backwards"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("*:x")).getMessage().contains("'x'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("*:-1")).getMessage().contains("experts"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse("*:1;")).getMessage().contains("empty entry"));
    }

    @Test
    void validatedAgainstTheModel() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 8)) {
            ModelConfig c = model.config();
            int experts = c.moe().numFfnExperts();
            assertEquals(c.numSparseLayers() * experts, ExpertSet.parse("*").validate(c).count(c));
            String tooMany = "*:" + experts;
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse(tooMany).validate(c))
                    .getMessage().contains("routed FFN experts"));
            String layer = c.numLayers() + ":*";
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ExpertSet.parse(layer).validate(c))
                    .getMessage().contains("layers"));
        }
    }
}

import { MemoryTier } from "@tiercache/core"
import * as TierSuite from "@tiercache/testing/TierSuite"

// MemoryTier, the default L1, passes the suite as a tier of its own (here as the L2).
TierSuite.run("MemoryTier", { tier: MemoryTier.make({ maxEntries: 10_000 }) })

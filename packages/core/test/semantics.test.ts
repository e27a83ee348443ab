import { TestTier } from "@tiercache/testing"
import * as TierSuite from "@tiercache/testing/TierSuite"

TierSuite.run("TestTier", { tier: TestTier.layer() })

import { TestTier } from "@tiercache/testing"
import { Layer } from "effect"
import { semanticsSuite } from "./semantics.js"

semanticsSuite("TestTier", { l2: TestTier.make(), env: Layer.empty, live: false })

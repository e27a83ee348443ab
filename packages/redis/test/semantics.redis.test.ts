import { RedisServer } from "@tiercache/testing"
import { Layer } from "effect"
import { semanticsSuite } from "../../core/test/semantics.js"
import { RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

// The core semantics of TieredCache, with RedisTier as the L2 (keys are fresh per test, on one
// redis-server for the suite).
semanticsSuite("RedisTier", {
  l2: RedisTier.make({ prefix: "semantics:" }),
  env: connectionLayer().pipe(Layer.provideMerge(RedisServer.layer())),
  live: true
})

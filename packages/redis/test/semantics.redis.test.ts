import { RedisServer } from "@tiercache/testing"
import * as TierSuite from "@tiercache/testing/TierSuite"
import { Layer } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

// The core semantics of TieredCache, with RedisTier as the L2 (keys are fresh per test, on one
// redis-server for the suite).
TierSuite.run("RedisTier", {
  tier: RedisTier.layer({ prefix: "semantics:" }),
  env: connectionLayer().pipe(Layer.provideMerge(RedisServer.layer())),
  live: true
})

import { FileSystem, KeyValueStore } from "@effect/platform"
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import * as TierSuite from "@tiercache/testing/TierSuite"
import { Effect, Layer } from "effect"

TierSuite.run("KeyValueStoreTier (memory store)", {
  tier: KeyValueStoreTier.layer().pipe(Layer.provide(KeyValueStore.layerMemory))
})

TierSuite.run("KeyValueStoreTier (file system store)", {
  tier: Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
    return yield* KeyValueStoreTier.make().pipe(Effect.provide(KeyValueStore.layerFileSystem(directory)))
  }),
  env: Layer.merge(NodeFileSystem.layer, NodePath.layer),
  // Real file I/O: run on the real clock, whose pauses let the writes land.
  live: true
})

import { FileSystem, KeyValueStore } from "@effect/platform"
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Layer } from "effect"
import { semanticsSuite } from "./semantics.js"

semanticsSuite("KeyValueStoreTier (memory store)", {
  l2: KeyValueStoreTier.make().pipe(Effect.provide(KeyValueStore.layerMemory)),
  env: Layer.empty,
  live: false
})

semanticsSuite("KeyValueStoreTier (file system store)", {
  l2: Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
    return yield* KeyValueStoreTier.make().pipe(Effect.provide(KeyValueStore.layerFileSystem(directory)))
  }),
  env: Layer.merge(NodeFileSystem.layer, NodePath.layer),
  // Real file I/O: run on the real clock, whose pauses let the writes land.
  live: true
})

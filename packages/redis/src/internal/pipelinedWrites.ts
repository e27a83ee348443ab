/**
 * The small writes of RedisTier's `setMany` (tierWrites.ts): sent in pipelines of at most
 * WRITE_CHUNK writes, one after the other, each bounded by the command timeout; while commands
 * wait in the driver's auto-pipeline, joining it one write at a time instead. Each write's PX is
 * counted as its pipeline is sent.
 */
import type { CacheError } from "@tiercache/core"
import { type Clock, Effect } from "effect"
import type { Redis } from "ioredis"
import { autoPipelineWaits } from "./corkedSend.js"
import { pxOf } from "./px.js"
import type { Runner } from "./tierRunner.js"

type TierError = CacheError.TierError

/** Most writes in one pipeline of `setMany`. */
const WRITE_CHUNK = 1000

/** A write of `setMany`, its value encoded. */
export interface Write {
  readonly key: string
  /** The encoded entry; undefined when it was gone already (the key is unlinked). */
  readonly value: string | undefined
  /** The entry's `staleUntil`, from which its PX is counted when it is sent. */
  readonly staleUntil: number
}

/** What the pipelined writes are sent with. */
export interface Deps {
  /** The command connection's client. */
  readonly client: Redis
  readonly clock: Clock.Clock
  readonly runner: Runner
}

/** Builds the sending of a `setMany`'s small writes (full keys). */
export const make = ({ client, clock, runner }: Deps) => {
  const { run, exec } = runner

  /**
   * Hands each write of `chunk` to `set`, its PX counted now, or to `unlink` when its entry is
   * gone (already, or by now).
   */
  const eachWrite = (
    chunk: ReadonlyArray<Write>,
    set: (key: string, value: string, px: number) => void,
    unlink: (key: string) => void
  ): void => {
    const now = clock.unsafeCurrentTimeMillis()
    for (const w of chunk) {
      const px = pxOf(w.staleUntil, now)
      if (w.value === undefined || !(px > 0)) unlink(w.key)
      else set(w.key, w.value, px)
    }
  }

  /**
   * The small writes of a `setMany`, in pipelines of at most WRITE_CHUNK writes, one after the
   * other: each is bounded by the command timeout (as the chunks of `remove` and getMany are),
   * so that a batch never fails on its size alone (one pipeline of 200,000 writes, bounded as a
   * whole, failed on a healthy Redis while its writes went on landing). The PXs are counted as a
   * pipeline is sent: the batch may have waited for an earlier large write of one of its keys
   * (keyOrder.ts), a chunk for those before it.
   * While commands wait in the driver's auto-pipeline (a removal, a write that took that way:
   * corkedSend.ts), a pipeline would be written ahead of them, and an earlier write or removal of
   * a key land after this one: the chunk's writes then join the auto-pipeline, one by one (each
   * bounded by the command timeout, deadlines.ts).
   */
  const writeSmall = (small: ReadonlyArray<Write>): Effect.Effect<void, TierError> =>
    Effect.gen(function* () {
      for (let i = 0; i < small.length; i += WRITE_CHUNK) {
        const chunk = small.slice(i, i + WRITE_CHUNK)
        if (autoPipelineWaits(client)) {
          yield* run("setMany", () => {
            const sent: Array<Promise<unknown>> = []
            eachWrite(
              chunk,
              (key, value, px) => sent.push(client.set(key, value, "PX", px)),
              (key) => sent.push(client.unlink(key))
            )
            return Promise.all(sent)
          })
        } else {
          yield* exec("setMany", () => {
            const pipeline = client.pipeline()
            eachWrite(
              chunk,
              (key, value, px) => pipeline.set(key, value, "PX", px),
              (key) => pipeline.unlink(key)
            )
            return pipeline
          })
        }
      }
    })

  return writeSmall
}

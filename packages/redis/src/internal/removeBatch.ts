/**
 * The `Remove` messages a bus publishes in one moment, sent as one message: with many writes at
 * once each PUBLISH cost the sender a command, Redis a fan-out, and every subscriber (the
 * sender's own echo included) a message to parse and hand over. The removes of one moment leave
 * as one `RemoveBulk` (a lone one as the `Remove` it is), right before the command connection's
 * corked write of that moment leaves (corkedSend.ts `beforeUncork`), so a lone write's PUBLISH
 * still goes out with its SET.
 *
 * Order: a batch holds only removes; before any other message is published the batch is sent
 * (`flush`), so messages leave in the order they were published. A remove leaves at the end of
 * its moment, after commands sent later in the same moment: a removal that arrives later only
 * removes more (the next read goes to Redis), never leaves a stale copy.
 */
import type { InvalidationMessage } from "@tiercache/core"

/** Most keys in one message. */
const MAX_KEYS = 256

type Remove = InvalidationMessage.InvalidationMessage & { readonly type: "Remove" }

/** How a remove's message went: undefined once sent, or the failure. */
export type Done = (failure: { readonly cause: unknown } | undefined) => void

/** The removes waiting for the end of the moment. */
export interface RemoveBatch {
  /**
   * Adds a remove to the batch; `done` is told how the message carrying it went. Answers false
   * (and keeps neither) when it cannot wait: send it at once.
   */
  readonly add: (message: Remove, done: Done) => boolean
  /** Sends the waiting removes now. */
  readonly flush: () => void
}

/** What a batch needs. */
export interface Deps {
  /** Publishes one message (its namespace stamped, its echo remembered); may throw. */
  readonly publish: (message: InvalidationMessage.InvalidationMessage) => Promise<unknown>
  /** Runs `flush` at the end of the moment; false when it cannot (send at once instead). */
  readonly atEnd: (flush: () => void) => boolean
}

interface Pending {
  readonly first: Remove
  readonly keys: Array<string>
  readonly done: Array<Done>
}

/** Builds the batch of one bus. */
export const make = ({ atEnd, publish }: Deps): RemoveBatch => {
  let pending: Pending | undefined
  const flush = (): void => {
    const batch = pending
    if (batch === undefined) return
    pending = undefined
    const { done, first, keys } = batch
    const message: InvalidationMessage.InvalidationMessage =
      keys.length === 1
        ? first
        : first.origin === undefined
          ? { type: "RemoveBulk", keys }
          : { type: "RemoveBulk", keys, origin: first.origin }
    const settle = (failure: { readonly cause: unknown } | undefined) => {
      for (const d of done) d(failure)
    }
    let sent: Promise<unknown>
    try {
      sent = publish(message)
    } catch (cause) {
      settle({ cause })
      return
    }
    sent.then(
      () => settle(undefined),
      (cause: unknown) => settle({ cause })
    )
  }
  return {
    add: (message, done) => {
      if (
        pending !== undefined &&
        (pending.first.origin !== message.origin || pending.keys.length >= MAX_KEYS)
      ) {
        flush()
      }
      if (pending !== undefined) {
        pending.keys.push(message.key)
        pending.done.push(done)
        return true
      }
      if (!atEnd(flush)) return false
      pending = { first: message, keys: [message.key], done: [done] }
      return true
    },
    flush
  }
}

/**
 * The payloads a bus published whose echo its live subscriptions have not all received yet.
 * Redis Pub/Sub sends every message back to its sender's own subscriptions; an echo is handed
 * over as the message published, without decoding it again (the cache then skips its own
 * message by origin). Update messages are left out (their value is decoded afresh for each
 * receiver), and so is everything while nobody subscribes; the map is emptied when it
 * outgrows `limit` (echoes lost while a connection was down).
 */
import type { InvalidationBus, InvalidationMessage } from "@tiercache/core"

/** The own echoes of one bus. */
export interface OwnEchoes {
  /** Notes a payload just published (with the message it encodes). */
  readonly remember: (payload: string, message: InvalidationMessage.InvalidationMessage) => void
  /** The event of an echo of our own publish (once per live subscription), or undefined. */
  readonly take: (raw: string) => InvalidationBus.Event | undefined
  /** A subscription went live. */
  readonly subscribed: () => void
  /** A subscription ended. */
  readonly unsubscribed: () => void
}

/** Builds the own echoes of one bus. */
export const make = (limit = 1024): OwnEchoes => {
  const echoes = new Map<string, { readonly event: InvalidationBus.Event; remaining: number }>()
  let subscriptions = 0
  return {
    remember: (payload, message) => {
      if (subscriptions === 0 || message.type === "Update") return
      const known = echoes.get(payload)
      if (known !== undefined) {
        known.remaining += subscriptions
        return
      }
      if (echoes.size >= limit) echoes.clear()
      echoes.set(payload, { event: { _tag: "Message", message }, remaining: subscriptions })
    },
    take: (raw) => {
      const known = echoes.get(raw)
      if (known === undefined) return undefined
      if (--known.remaining <= 0) echoes.delete(raw)
      return known.event
    },
    subscribed: () => {
      subscriptions++
    },
    unsubscribed: () => {
      subscriptions--
      if (subscriptions === 0) echoes.clear()
    }
  }
}

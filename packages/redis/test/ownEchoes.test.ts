import { describe, expect, it } from "@effect/vitest"
import type { InvalidationMessage } from "@tiercache/core"
import * as OwnEchoes from "../src/internal/ownEchoes.js"

const remove: InvalidationMessage.InvalidationMessage = { type: "Remove", key: "k", origin: "a" }
const payload = JSON.stringify(remove)

describe("own echoes of the Redis bus", () => {
  it("an echo is handed over once per live subscription, as the message published", () => {
    const echoes = OwnEchoes.make()
    echoes.subscribed()
    echoes.subscribed()
    echoes.remember(payload, remove)
    expect(echoes.take(payload)).toEqual({ _tag: "Message", message: remove })
    expect(echoes.take(payload)).toEqual({ _tag: "Message", message: remove })
    // Both subscriptions had theirs: a third copy (someone else's) is decoded as usual.
    expect(echoes.take(payload)).toBeUndefined()
  })

  it("the same payload published twice is handed over twice per subscription", () => {
    const echoes = OwnEchoes.make()
    echoes.subscribed()
    echoes.remember(payload, remove)
    echoes.remember(payload, remove)
    expect(echoes.take(payload)).toBeDefined()
    expect(echoes.take(payload)).toBeDefined()
    expect(echoes.take(payload)).toBeUndefined()
  })

  it("a payload published again adds one echo for each live subscription", () => {
    const echoes = OwnEchoes.make()
    echoes.subscribed()
    echoes.subscribed()
    echoes.remember(payload, remove)
    echoes.remember(payload, remove)
    for (let i = 0; i < 4; i++) expect(echoes.take(payload)).toBeDefined()
    expect(echoes.take(payload)).toBeUndefined()
  })

  it("nothing is kept without a subscription, for Update messages, or past the limit", () => {
    const echoes = OwnEchoes.make(2)
    echoes.remember(payload, remove)
    expect(echoes.take(payload)).toBeUndefined()
    echoes.subscribed()
    const update: InvalidationMessage.InvalidationMessage = {
      type: "Update",
      key: "k",
      value: { a: 1 },
      origin: "a"
    }
    echoes.remember(JSON.stringify(update), update)
    expect(echoes.take(JSON.stringify(update))).toBeUndefined()
    for (const key of ["a", "b", "c"]) echoes.remember(key, { type: "Remove", key, origin: "a" })
    // The third filled the map past its limit: the first two were dropped (decoded as usual).
    expect([echoes.take("a"), echoes.take("b")]).toEqual([undefined, undefined])
    expect(echoes.take("c")).toBeDefined()
    echoes.remember(payload, remove)
    echoes.unsubscribed()
    expect(echoes.take(payload)).toBeUndefined()
  })
})

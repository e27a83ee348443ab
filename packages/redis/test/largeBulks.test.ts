/**
 * The pieces of a long RemoveBulk leave one at a time (largeBulks.ts makeSender): sent together,
 * they reached Redis together, and Redis queued them all on every subscriber at once (1 MiB
 * pieces of a 3 MB message passed a 2 MB client-output-buffer-limit: busMessageBytes.redis.test.ts
 * shows the limit; this shows the order). A lone message never waits.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidationMessage } from "@tiercache/core"
import { Effect } from "effect"
import { type Encoded, makeSender, piecesOf } from "../src/internal/largeBulks.js"

const encoded = (message: InvalidationMessage.InvalidationMessage): Encoded => ({
  stamped: message,
  payload: InvalidationMessage.encode(message)
})

/** A sendOne whose answers the test gives, with the log of what was sent and answered. */
const answeredByHand = () => {
  const log: Array<string> = []
  const pending = new Map<string, { resolve: () => void; reject: (e: unknown) => void }>()
  const sendOne = (out: Encoded): Promise<unknown> => {
    const name = out.stamped.type === "RemoveBulk" ? out.stamped.keys.join("") : out.stamped.type
    log.push(`sent ${name}`)
    return new Promise<void>((resolve, reject) => pending.set(name, { resolve, reject }))
  }
  const tick = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
  return {
    log,
    sendOne,
    answer: (name: string) => pending.get(name)!.resolve(),
    fail: (name: string) => pending.get(name)!.reject(new Error(name)),
    tick
  }
}

describe("largeBulks", () => {
  it("piecesOf leaves other kinds and short bulks whole", () => {
    const update = encoded({ type: "Update", key: "k", value: "x".repeat(100) })
    expect(piecesOf(update, 10)).toEqual([update])
    const bulk = encoded({ type: "RemoveBulk", keys: ["a", "b"] })
    expect(piecesOf(bulk, bulk.payload.length)).toEqual([bulk])
    expect(piecesOf(bulk, bulk.payload.length - 1).map((p) => p.payload)).toEqual([
      '{"type":"RemoveBulk","keys":["a"]}',
      '{"type":"RemoveBulk","keys":["b"]}'
    ])
  })

  it.live("the pieces of a cut message leave one at a time, each once the one before was answered", () =>
    Effect.gen(function* () {
      const { answer, log, sendOne, tick } = answeredByHand()
      const send = makeSender(sendOne)
      const cut = (keys: Array<string>) => keys.map((key) => encoded({ type: "RemoveBulk", keys: [key] }))
      let first = "pending"
      void send(cut(["a", "b", "c"])).then(() => (first = "done"))
      let second = "pending"
      void send(cut(["d", "e"])).then(() => (second = "done"))
      // A lone message does not wait for them.
      void send([encoded({ type: "Clear" })])
      yield* tick
      expect(log).toEqual(["sent a", "sent Clear"])
      for (const name of ["a", "b", "c", "d"]) {
        answer(name)
        yield* tick
      }
      expect(log).toEqual(["sent a", "sent Clear", "sent b", "sent c", "sent d", "sent e"])
      expect([first, second]).toEqual(["done", "pending"])
      answer("e")
      yield* tick
      expect(second).toBe("done")
      // Nothing waiting: the first piece leaves at once again.
      void send(cut(["f", "g"]))
      expect(log.at(-1)).toBe("sent f")
    })
  )

  it.live("a piece that fails fails its message; the later pieces are still sent, and the lane goes on", () =>
    Effect.gen(function* () {
      const { answer, fail, log, sendOne, tick } = answeredByHand()
      const send = makeSender(sendOne)
      const cut = (keys: Array<string>) => keys.map((key) => encoded({ type: "RemoveBulk", keys: [key] }))
      let outcome = "pending"
      void send(cut(["a", "b"])).then(
        () => (outcome = "done"),
        (e: Error) => (outcome = `failed ${e.message}`)
      )
      fail("a")
      yield* tick
      expect([log, outcome]).toEqual([["sent a", "sent b"], "failed a"])
      answer("b")
      void send(cut(["c", "d"]))
      yield* tick
      expect(log.at(-1)).toBe("sent c")
    })
  )

  it("a sendOne that throws fails the message, as a rejection", async () => {
    const send = makeSender(() => {
      throw new Error("boom")
    })
    const piece = encoded({ type: "RemoveBulk", keys: ["a"] })
    await expect(send([piece, piece])).rejects.toThrow("boom")
  })
})

/**
 * connectionError.ts: an error made for a connection asked for once its layer is closed is known
 * by a mark the error was made with, never by its reason's text (a stream consumer stops trying
 * to reconnect on it alone: streamConsumer.ts). The mark is no part of the error's shape.
 */

import * as Util from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { isLayerClosed, layerClosed, RedisConnectionError } from "../src/internal/connectionError.js"

describe("isLayerClosed", () => {
  it("is true of every error layerClosed makes, whatever the connection's role", () => {
    for (const role of ["blocking", "bulk", "streams", "consumer", "pubsub", ""]) {
      expect(isLayerClosed(layerClosed(role))).toBe(true)
    }
  })

  it("is false of an error that only reads like one: the same reason, made elsewhere", () => {
    const closed = layerClosed("consumer")
    const lookalike = new RedisConnectionError({ reason: closed.reason })
    expect(lookalike.reason).toBe(closed.reason)
    expect(isLayerClosed(lookalike)).toBe(false)
    // A copy through the error's Schema is such an error too: the mark does not travel.
    const copy = Schema.decodeUnknownSync(RedisConnectionError)(
      Schema.encodeSync(RedisConnectionError)(closed)
    )
    expect(isLayerClosed(copy)).toBe(false)
    expect(isLayerClosed(new RedisConnectionError({ reason: "connect ECONNREFUSED 127.0.0.1:1" }))).toBe(
      false
    )
  })

  it("leaves the error's shape as any RedisConnectionError's: keys, JSON, inspect", () => {
    const closed = layerClosed("bulk")
    const plain = new RedisConnectionError({ reason: closed.reason })
    expect(closed.reason).toBe("bulk connection: the connection layer is closed")
    expect(Reflect.ownKeys(closed)).toEqual(Reflect.ownKeys(plain))
    expect(JSON.stringify(closed)).toBe(JSON.stringify(plain))
    const inspected = (error: RedisConnectionError) => Util.inspect(error).replace(/\n\s+at [^\n]*/g, "")
    expect(inspected(closed)).toBe(inspected(plain))
    expect(closed).toEqual(plain)
  })
})

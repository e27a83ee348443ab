/**
 * README's Errors section: RedisConnectionError, @tiercache/redis's one error, is a typed
 * `Schema.TaggedError` as the core's are, exported by RedisConnection.
 */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { RedisConnection } from "../src/index.js"

describe("RedisConnectionError (README Errors)", () => {
  it("is a Schema.TaggedError exported from RedisConnection, tagged with its name", () => {
    const { RedisConnectionError } = RedisConnection
    const error = new RedisConnectionError({ reason: "connect ECONNREFUSED 127.0.0.1:1" })
    expect(Schema.isSchema(RedisConnectionError)).toBe(true)
    expect([error instanceof Error, error._tag]).toEqual([true, "RedisConnectionError"])
    expect(Schema.is(RedisConnectionError)(error)).toBe(true)
    const decoded = Schema.decodeUnknownSync(RedisConnectionError)(
      Schema.encodeSync(RedisConnectionError)(error)
    )
    expect(decoded).toBeInstanceOf(RedisConnectionError)
    expect(decoded).toEqual(error)
  })
})

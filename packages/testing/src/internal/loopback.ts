/**
 * The test server's loopback port: a free one to start on, a raw probe of what answers on it,
 * and whether it is closed again.
 *
 * @internal
 */
import * as Net from "node:net"
import { Effect } from "effect"
import { RedisServerError } from "./serverError.js"

/** A port free on 127.0.0.1 now (the OS picks it). */
export const freePort = Effect.async<number, RedisServerError>((resume) => {
  const server = Net.createServer()
  server.unref()
  server.once("error", (cause) =>
    resume(Effect.fail(new RedisServerError({ reason: "no free port", cause })))
  )
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() =>
      resume(port > 0 ? Effect.succeed(port) : Effect.fail(new RedisServerError({ reason: "no free port" })))
    )
  })
})

/** One exchange on a raw socket: sends an inline command and answers the first reply line. */
export const probe = (port: number, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let data = ""
    const done = (f: () => void) => {
      socket.removeAllListeners()
      socket.on("error", () => {})
      socket.destroy()
      f()
    }
    socket.setTimeout(500, () => done(() => reject(new Error("probe timed out"))))
    socket.once("error", (error) => done(() => reject(error)))
    socket.once("connect", () => socket.write(`${command}\r\n`))
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      const end = data.indexOf("\r\n")
      if (end >= 0) done(() => resolve(data.slice(0, end)))
    })
    socket.once("close", () => done(() => reject(new Error("closed before a reply"))))
  })

/** Whether nothing accepts connections on the port. */
export const portClosed = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => {
      socket.destroy()
      resolve(true)
    })
  })

// SPDX-License-Identifier: GPL-2.0-only
//
// Function wrapping: pre and post hooks on real code, whichever way the function is
// reached (direct call, indirect call, tail jump, recursion), arguments and return
// values changed, calls skipped, wrapping after translation, and libc's malloc and
// free wrapped under zlib.

import CWorkloads
import Engine
import Glibc
import Testing
import UserHost

/// What the hooks saw. Hooks are C function pointers (no captures), so they
/// find this through their data pointer; fixed storage, no allocation in hooks.
struct WrapRecord {
    var pre = 0
    var post = 0
    var mismatches = 0
    var argumentDelta: UInt64 = 0
    var returnDelta: UInt64 = 0
    var skipEven = false
    var skipped = 0
    var noPostForOdd = false
    /// Live allocations (malloc wrapping): pointer slots, 0 when free.
    var live: InlineArray<64, UInt64> = InlineArray(repeating: 0)
    var unknownFrees = 0
    var liveOverflow = 0

    static func from(_ data: UnsafeMutableRawPointer?) -> UnsafeMutablePointer<WrapRecord> {
        data!.assumingMemoryBound(to: WrapRecord.self)
    }
}

/// kw_wrapped_add: records a + b (after any change) for the post hook to check.
let addPre: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    let record = WrapRecord.from(data)
    record.pointee.pre += 1
    if record.pointee.skipEven && call.pointee.argument(0) % 2 == 0 {
        record.pointee.skipped += 1
        call.pointee.skip(returning: 5)
        return
    }
    if record.pointee.noPostForOdd && call.pointee.argument(0) % 2 == 1 { call.pointee.skipPostHook() }
    call.pointee.setArgument(1, call.pointee.argument(1) &+ record.pointee.argumentDelta)
    call.pointee.userData = call.pointee.argument(0) &+ call.pointee.argument(1)
}

let addPost: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    let record = WrapRecord.from(data)
    record.pointee.post += 1
    if call.pointee.returnValue != call.pointee.userData { record.pointee.mismatches += 1 }
    call.pointee.returnValue = call.pointee.returnValue &+ record.pointee.returnDelta
}

/// kw_fib: the post hook checks each frame's result against its own argument.
let fibPre: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    WrapRecord.from(data).pointee.pre += 1
    call.pointee.userData = call.pointee.argument(0)
}

let fibPost: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    let record = WrapRecord.from(data)
    record.pointee.post += 1
    var a: UInt64 = 0
    var b: UInt64 = 1
    for _ in 0..<call.pointee.userData { (a, b) = (b, a &+ b) }
    if call.pointee.returnValue != a { record.pointee.mismatches += 1 }
}

let mallocPost: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    let record = WrapRecord.from(data)
    record.pointee.post += 1
    let pointer = call.pointee.returnValue
    guard pointer != 0 else { return }
    for i in 0..<64 where record.pointee.live[i] == 0 {
        record.pointee.live[i] = pointer
        return
    }
    record.pointee.liveOverflow += 1
}

let freePre: WrapHook = { raw, data in
    let call = WrapCall.from(raw)
    let record = WrapRecord.from(data)
    record.pointee.pre += 1
    let pointer = call.pointee.argument(0)
    guard pointer != 0 else { return }
    for i in 0..<64 where record.pointee.live[i] == pointer {
        record.pointee.live[i] = 0
        return
    }
    record.pointee.unknownFrees += 1
}

@Suite("function wrapping", .serialized)
struct WrapTests {
    /// A runner with kw_wrapped_add wrapped; the record lives as long as the test.
    final class Wrapped: @unchecked Sendable {
        let runner = InProcessRunner()
        let record = UnsafeMutablePointer<WrapRecord>.allocate(capacity: 1)
        init() { record.initialize(to: WrapRecord()) }
        deinit { record.deallocate() }

        func wrap(_ function: UnsafeRawPointer, pre: WrapHook?, post: WrapHook?) {
            let ok = runner.translator.wrap(address: UInt64(UInt(bitPattern: function)), pre: pre, post: post,
                                            data: UnsafeMutableRawPointer(record))
            #expect(ok)
        }

        func driver(_ n: Int) throws -> Int {
            Int(bitPattern: UInt(try runner.call(address(of: kw_wrap_driver as @convention(c) (Int, Int) -> Int),
                                                 UInt64(n), 0)))
        }
    }

    static var addFunction: UnsafeRawPointer { address(of: kw_wrapped_add as @convention(c) (Int, Int) -> Int) }

    @Test("pre and post see every call: direct, indirect and tail jump")
    func everyCall() throws {
        let w = Wrapped()
        w.wrap(Self.addFunction, pre: addPre, post: addPost)
        let n = 200
        #expect(try w.driver(n) == kw_wrap_driver(n, 0))
        #expect(w.record.pointee.pre == 3 * n)
        #expect(w.record.pointee.post == 3 * n)
        #expect(w.record.pointee.mismatches == 0)
        #expect(w.runner.translator.state.pointee.stats.wrapFramesDropped == 0)
    }

    @Test("the pre hook changes an argument and the post hook the return value")
    func changeArgumentsAndResult() throws {
        let w = Wrapped()
        w.record.pointee.argumentDelta = 10
        w.record.pointee.returnDelta = 1000
        w.wrap(Self.addFunction, pre: addPre, post: addPost)
        let n = 50
        #expect(try w.driver(n) == kw_wrap_driver(n, 0) + 3 * n * (10 + 1000))
        #expect(w.record.pointee.mismatches == 0)
    }

    @Test("the pre hook skips the function and chooses its return value")
    func skip() throws {
        let w = Wrapped()
        w.record.pointee.skipEven = true
        w.wrap(Self.addFunction, pre: addPre, post: addPost)
        let n = 40
        // Even i: all three calls return 5 instead of i + b.
        var expected = 0
        for i in 0..<n { expected += i % 2 == 0 ? 15 : (i + 1) + (i + 2) + (i + 6) }
        #expect(try w.driver(n) == expected)
        #expect(w.record.pointee.skipped == 3 * n / 2)
        #expect(w.record.pointee.post == 3 * n / 2)
        #expect(w.record.pointee.mismatches == 0)
    }

    @Test("a pre hook that has nothing for the return skips the post hook of that call only")
    func skipPostHook() throws {
        let w = Wrapped()
        w.record.pointee.noPostForOdd = true
        w.wrap(Self.addFunction, pre: addPre, post: addPost)
        let n = 40
        #expect(try w.driver(n) == kw_wrap_driver(n, 0))
        #expect(w.record.pointee.pre == 3 * n)
        #expect(w.record.pointee.post == 3 * n / 2)  // even arguments only
        #expect(w.record.pointee.mismatches == 0)
    }

    @Test("recursion: every frame's post hook gets that frame's result")
    func recursion() throws {
        let w = Wrapped()
        let fib = address(of: kw_fib as @convention(c) (Int) -> Int)
        w.wrap(fib, pre: fibPre, post: fibPost)
        let result = try w.runner.call(fib, 20)
        #expect(Int(result) == kw_fib(20))
        #expect(w.record.pointee.pre > 20)
        // The outermost call returns to the runner, outside the cache: no post.
        #expect(w.record.pointee.post == w.record.pointee.pre - 1)
        #expect(w.record.pointee.mismatches == 0)
    }

    @Test("wrapping code that is already translated replaces its translation")
    func wrapAfterTranslation() throws {
        let w = Wrapped()
        let n = 30
        #expect(try w.driver(n) == kw_wrap_driver(n, 0))
        let before = w.runner.translator.state.pointee.stats.retranslations
        w.wrap(Self.addFunction, pre: addPre, post: addPost)
        #expect(try w.driver(n) == kw_wrap_driver(n, 0))
        #expect(w.runner.translator.state.pointee.stats.retranslations > before)
        #expect(w.record.pointee.pre == 3 * n)
        #expect(w.record.pointee.post == 3 * n)
        #expect(w.record.pointee.mismatches == 0)
    }

    @Test("libc malloc and free wrapped while zlib runs: every allocation is freed")
    func mallocAndFree() throws {
        let w = Wrapped()
        let handle = dlopen(nil, RTLD_NOW)
        let malloc = try #require(dlsym(handle, "malloc"))
        let free = try #require(dlsym(handle, "free"))
        w.wrap(malloc, pre: nil, post: mallocPost)
        w.wrap(free, pre: freePre, post: nil)
        let zlib: @convention(c) (Int, Int) -> Int = { a, b in kw_zlib(a, b) }
        let native = zlib(100_000, 5)
        let translated = try w.runner.call(address(of: zlib), 100_000, 5)
        #expect(Int(bitPattern: UInt(translated)) == native)
        #expect(w.record.pointee.post >= 3)  // zlib's own buffers at least
        #expect(w.record.pointee.pre >= 3)
        #expect(w.record.pointee.liveOverflow == 0)
        var live = 0
        for i in 0..<64 where w.record.pointee.live[i] != 0 { live += 1 }
        #expect(live == 0)
        #expect(w.record.pointee.unknownFrees == 0)
    }
}

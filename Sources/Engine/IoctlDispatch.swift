// SPDX-License-Identifier: GPL-2.0-only
//
// The ioctl dispatch of /dev/kdbt. The shim checks CAP_SYS_ADMIN and serializes
// calls; everything about request layouts is decided here, once, for both hosts.
// Userland pointers and sizes are never trusted: every byte crosses through the
// host's copy functions, sizes are bounded before use, and arithmetic on user values
// wraps (&+) instead of trapping: a Swift overflow trap in the kernel is an oops.

#if canImport(Protocol)
import Protocol
#endif

/// The largest reply layout this Engine knows; the stack buffer holds one.
private let largestRequest = kdbtLargestKnownLayout

extension Engine {
    /// Serves one ioctl: 0 or a negative errno.
    public func ioctl(number: UInt32, argument: UInt64) -> Int32 {
        guard let command = KdbtCommand(number: number) else { return -Errno.ENOTTY }
        state.pointee.ioctlCalls &+= 1
        return withUnsafeTemporaryAllocation(byteCount: largestRequest, alignment: 8) { buffer in
            serve(command, argument, buffer)
        }
    }

    private func serve(_ command: KdbtCommand, _ argument: UInt64,
                       _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        let known = command.currentLayoutSize
        guard known <= buffer.count else { return -Errno.EINVAL }  // a layout outgrew the buffer
        let userSize = readExtensibleRequest(from: argument, minimumSize: command.firstLayoutSize, knownSize: known,
                                             into: buffer)
        if userSize < 0 { return Int32(userSize) }
        let reader = LayoutReader(UnsafeRawBufferPointer(rebasing: buffer[0..<known]))
        let writer = LayoutWriter(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<known]))
        switch command {
        case .version:
            let bad = VersionReply.validate(reader)
            if bad != 0 { return -bad }
            version.encode(writer)
        case .status:
            let bad = StatusReply.validate(reader)
            if bad != 0 { return -bad }
            status.encode(writer)
        case .readText:
            let bad = ReadTextRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = ReadTextRequest(decoding: reader)
            let copied = copyKernelText(request)
            if copied < 0 { return Int32(copied) }
            request.bytesRead = UInt32(copied)
            request.encode(writer)
        case .selfTest:
            let bad = SelfTestRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = SelfTestRequest(decoding: reader)
            if state.pointee.takeover != nil { return -Errno.EBUSY }  // one code pool at a time
            let result = host.translationSelfTest(&request)
            if result != 0 { return result }
            request.encode(writer)
        case .attach:
            let bad = AttachRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = AttachRequest(decoding: reader)
            let result = host.attach(&request, slot: &state.pointee.takeover)
            if result != 0 { return result }
            state.pointee.attached = state.pointee.takeover != nil
            request.encode(writer)
        case .retool:
            let bad = AttachRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = AttachRequest(decoding: reader)
            let result = host.retool(&request, slot: &state.pointee.takeover)
            state.pointee.attached = state.pointee.takeover != nil
            if result != 0 { return result }
            request.encode(writer)
        case .detach:
            let bad = DetachRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = DetachRequest()
            let result = host.detach(&request, slot: &state.pointee.takeover)
            if result != 0 { return result }
            state.pointee.attached = state.pointee.takeover != nil
            request.encode(writer)
        case .cpuStats:
            let bad = CPUStatsRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = CPUStatsRequest(decoding: reader)
            let result = host.cpuStats(&request, takeover: state.pointee.takeover)
            if result != 0 { return result }
            request.encode(writer)
        case .profile:
            let bad = ProfileRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = ProfileRequest(decoding: reader)
            let result = host.profile(&request, takeover: state.pointee.takeover, scratch: state.pointee.scratch)
            if result != 0 { return result }
            request.encode(writer)
        case .findings:
            let bad = FindingsRequest.validate(reader)
            if bad != 0 { return -bad }
            var request = FindingsRequest(decoding: reader)
            let result = host.findings(&request, takeover: state.pointee.takeover)
            if result != 0 { return result }
            request.encode(writer)
        }
        return writeReply(to: argument, userSize: userSize, knownSize: known, from: buffer)
    }

    /// Copies the requested text to user memory a page at a time through the scratch
    /// page: the number of bytes copied, or a negative errno (EFAULT for text the
    /// kernel does not know, or a user buffer we cannot write).
    func copyKernelText(_ request: ReadTextRequest) -> Int {
        let scratch = state.pointee.scratch
        let total = Int(request.length)
        guard request.address &+ UInt64(total) > request.address else { return -Int(Errno.EFAULT) }
        var done = 0
        while done < total {
            // Chunks never cross a page, so each page's mapping is checked on its own.
            let address = request.address &+ UInt64(done)
            let toPageEnd = scratchBytes - Int(address & UInt64(scratchBytes - 1))
            let chunk = min(total - done, toPageEnd)
            guard host.readKernelText(scratch, address, chunk),
                  host.copyToUser(request.buffer &+ UInt64(done), scratch, chunk)
            else { return -Int(Errno.EFAULT) }
            done += chunk
        }
        return done
    }

    /// copy_struct_from_user semantics: the caller's `size` comes first; it must cover
    /// the first layout and stay within a page; bytes past what we know must be zero.
    /// On success the buffer holds `knownSize` bytes and the result is the caller's
    /// size; on failure, a negative errno.
    func readExtensibleRequest(
        from address: UInt64, minimumSize: Int, knownSize: Int, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        var size32: UInt32 = 0
        guard host.copyFromUser(&size32, address, 4) else { return -Int(Errno.EFAULT) }
        let userSize = Int(size32)
        if userSize < minimumSize { return -Int(Errno.EINVAL) }
        if userSize < knownSize {
            // An older, shorter layout: the fields it lacks read as zero.
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            guard host.copyFromUser(buffer.baseAddress!, address, userSize) else { return -Int(Errno.EFAULT) }
            return userSize
        }
        if userSize > kdbtMaxRequestSize { return -Int(Errno.E2BIG) }
        if userSize > knownSize {
            let zero = host.checkZeroedUser(address &+ UInt64(knownSize), userSize - knownSize)
            if zero < 0 { return Int(zero) }
            if zero == 0 { return -Int(Errno.E2BIG) }
        }
        guard host.copyFromUser(buffer.baseAddress!, address, knownSize) else {
            return -Int(Errno.EFAULT)
        }
        return userSize
    }

    /// Writes the reply back: the `size` field says how many bytes we wrote.
    func writeReply(to address: UInt64, userSize: Int, knownSize: Int,
                    from buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        let count = min(userSize, knownSize)
        LayoutWriter(buffer).u32(RequestHeader.sizeOffset, UInt32(count))
        LayoutWriter(buffer).u32(RequestHeader.flagsOffset, 0)
        return host.copyToUser(address, buffer.baseAddress!, count) ? 0 : -Errno.EFAULT
    }
}

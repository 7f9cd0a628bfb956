// SPDX-License-Identifier: GPL-2.0-only
//
// Typed requests over a DeviceConnection: builds each request buffer from its
// Protocol layout, checks the protocol version once per connection.

import Protocol

public struct KdbtClient<Device: DeviceConnection> {
    public let device: Device

    public init(device: Device) { self.device = device }

    /// The module's identity, without judging its protocol version.
    public func version() throws(DeviceError) -> VersionReply {
        try request(.version, size: VersionReply.sizeV1) { VersionReply(decoding: $0) }
    }

    /// Fails with `.protocolMismatch` unless the module speaks our protocol.
    public func handshake() throws(DeviceError) -> VersionReply {
        let reply = try version()
        guard reply.protocolVersion == kdbtProtocolVersion else {
            throw .protocolMismatch(module: reply.protocolVersion, cli: kdbtProtocolVersion)
        }
        return reply
    }

    public func status() throws(DeviceError) -> StatusReply {
        try request(.status, size: StatusReply.sizeV1) { StatusReply(decoding: $0) }
    }

    private func request<Reply>(
        _ command: KdbtCommand, size: Int, decode: (LayoutReader) -> Reply?
    ) throws(DeviceError) -> Reply {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        LayoutWriter(buffer).u32(RequestHeader.sizeOffset, UInt32(size))
        let result = device.perform(command.number, buffer)
        if result < 0 { throw .requestFailed(command: "\(command)", errno: -result) }
        let reader = LayoutReader(UnsafeRawBufferPointer(buffer))
        guard Int(reader.u32(RequestHeader.sizeOffset)) == size, let reply = decode(reader) else {
            throw .malformedReply(command: "\(command)")
        }
        return reply
    }
}

// SPDX-License-Identifier: GPL-2.0-only
//
// A small JSON writer: ordered keys (stable output for scripts and golden tests),
// no Foundation (the CLI is linked statically into the guest image).

public indirect enum JSONValue: Equatable, Sendable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object(JSONObject)

    public func serialized() -> String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .string(let s): writeString(s, into: &out)
        case .int(let v): out += String(v)
        case .uint(let v): out += String(v)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (key, value)) in o.members.enumerated() {
                if i > 0 { out += "," }
                writeString(key, into: &out)
                out += ":"
                value.write(into: &out)
            }
            out += "}"
        }
    }
}

public struct JSONObject: Equatable, Sendable {
    public private(set) var members: [(String, JSONValue)] = []
    public init() {}
    public mutating func add(_ key: String, _ value: JSONValue) { members.append((key, value)) }
    public var value: JSONValue { .object(self) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count
            && zip(a.members, b.members).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

private func writeString(_ s: String, into out: inout String) {
    out += "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    out += "\""
}

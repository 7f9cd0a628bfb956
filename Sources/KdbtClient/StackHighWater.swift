// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard's per-CPU high-water marks (the least free bytes seen on each kind
// of stack while attached), as `kdbt report` shows them with or without findings.

import Protocol

extension CPUStatsRequest {
    /// Whether stackguard reported anything for this CPU.
    public var hasStackHighWater: Bool {
        taskStackMinFree != CPUStatsRequest.noHighWater || irqStackMinFree != CPUStatsRequest.noHighWater
            || exceptionStackMinFree != CPUStatsRequest.noHighWater
    }
}

public func renderStackHighWater(_ cpus: [CPUStatsRequest], format: OutputFormat) -> String {
    func value(_ v: UInt32) -> String { v == CPUStatsRequest.noHighWater ? "-" : "\(v)" }
    switch format {
    case .text:
        var out = "stackguard: least free bytes seen on each stack, per CPU\n"
        out += "cpu" + pad("task", 12) + pad("irq", 12) + pad("exception", 12) + "\n"
        for c in cpus {
            out += pad("\(c.cpu)", 3) + pad(value(c.taskStackMinFree), 12) + pad(value(c.irqStackMinFree), 12)
                + pad(value(c.exceptionStackMinFree), 12) + "\n"
        }
        return out
    case .json:
        var json = JSONObject()
        json.add("stackguard_high_water", .array(cpus.map { c in
            var o = JSONObject()
            o.add("cpu", .int(Int64(c.cpu)))
            func add(_ key: String, _ v: UInt32) { o.add(key, v == CPUStatsRequest.noHighWater ? .null : .uint(UInt64(v))) }
            add("task_min_free", c.taskStackMinFree)
            add("irq_min_free", c.irqStackMinFree)
            add("exception_min_free", c.exceptionStackMinFree)
            return .object(o)
        }))
        return json.value.serialized() + "\n"
    }
}

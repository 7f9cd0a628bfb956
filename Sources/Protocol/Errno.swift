// SPDX-License-Identifier: GPL-2.0-only
//
// Linux errno values the uAPI returns. Named here because the kernel build has no
// libc to import them from, and the CLI must match them exactly.

public enum Errno {
    public static let EPERM: Int32 = 1
    public static let ENOENT: Int32 = 2
    public static let E2BIG: Int32 = 7
    public static let ENOMEM: Int32 = 12
    public static let EACCES: Int32 = 13
    public static let EFAULT: Int32 = 14
    public static let EBUSY: Int32 = 16
    public static let EINVAL: Int32 = 22
    public static let ENOTTY: Int32 = 25
    public static let EOPNOTSUPP: Int32 = 95
}

// SPDX-License-Identifier: GPL-2.0-only
//
// libkdbt-preload.so: the Engine as `kdbt user` loads it into a program.

import CKdbtPreload
import UserHost

@_cdecl("kdbt_preload_start")
public func kdbtPreloadStart() -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(mutating: ProcessHost.start())
}

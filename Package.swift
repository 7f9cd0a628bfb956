// swift-tools-version:6.0
// SPDX-License-Identifier: GPL-2.0-only
//
// One package, two builds of the Engine: this manifest is the hosted build (tests,
// CLI, user-mode host). The kernel build compiles the same Sources/Protocol and
// Sources/Engine files as one Embedded Swift module; see kmod/Kbuild and Makefile.
import PackageDescription

// Flags shared by every target that is also compiled into the kernel module.
let engineSwiftSettings: [SwiftSetting] = [
    .enableExperimentalFeature("Extern"),
]

let package = Package(
    name: "kdbt",
    products: [
        .executable(name: "kdbt", targets: ["kdbt-cli"]),
        // Loaded into programs by `kdbt user` (LD_PRELOAD): the user-mode host.
        .library(name: "kdbt-preload", type: .dynamic, targets: ["KdbtPreload"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The uAPI: ioctl numbers and request layouts, shared by module and CLI.
        .target(name: "Protocol", swiftSettings: engineSwiftSettings),
        // Decoder, translator, dispatch: hosted here, Embedded Swift in kdbt.ko.
        .target(name: "Engine", dependencies: ["Protocol"], swiftSettings: engineSwiftSettings),
        // ioctl(2) and arch_prctl(2) are variadic and not imported into Swift: tiny
        // C wrappers, plus the few system calls the user-mode host needs.
        .target(name: "CKdbtSys"),
        // The Engine's user-mode host: runs code of this process translated.
        .target(name: "UserHost", dependencies: ["Engine", "CKdbtSys"]),
        .target(name: "CKdbtPreload"),
        .target(name: "KdbtPreload", dependencies: ["UserHost", "CKdbtPreload"]),
        // Real C code the translator tests run natively and translated.
        .target(name: "CWorkloads", path: "Tests/Workloads", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "CxxWorkloads", path: "Tests/CxxWorkloads"),
        // The CLI's library: device access, rendering; commands stay thin.
        .target(name: "KdbtClient", dependencies: ["Protocol", "CKdbtSys", "Engine"]),
        // elfutils' libdw/libdwfl (libdw-dev) for the Symbolizer.
        .target(name: "CLibdw", linkerSettings: [.linkedLibrary("dw"), .linkedLibrary("elf")]),
        // kallsyms locations to source lines and inline chains from DWARF (`report --symbolize`).
        .target(name: "Symbolizer", dependencies: ["KdbtClient", "CLibdw"]),
        // Zydis (libzydis-dev) as the reference disassembler of the printer tests.
        .target(name: "CZydis", linkerSettings: [.linkedLibrary("Zydis")]),
        .executableTarget(
            name: "kdbt-cli",
            dependencies: [
                "KdbtClient", "Symbolizer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Runs inside the guest: drives /dev/kdbt with malformed requests.
        .executableTarget(
            name: "kdbt-guest-client",
            dependencies: ["Protocol", "KdbtClient", "CKdbtSys"],
            path: "Tests/GuestClient"
        ),
        // make bench, kernel part: syscall microbenchmarks run in the guest (C).
        .executableTarget(name: "kdbt-guest-bench", path: "Benchmarks/KernelBench"),
        // The guest's kernel-heavy workload (C), run natively and attached.
        .executableTarget(name: "kdbt-guest-workload", path: "Tests/GuestWorkload"),
        // inscount against the ptrace oracle in a single-threaded process of its own.
        .executableTarget(
            name: "kdbt-inscount-oracle",
            dependencies: ["Engine", "UserHost", "CWorkloads"],
            path: "Tests/InsCountOracle"
        ),
        // Zydis and Capstone behind one C interface: the decoder's oracles (decoder-diff, bench).
        .target(
            name: "COracles", path: "Tests/DecoderDiff/COracles",
            linkerSettings: [.linkedLibrary("Zydis"), .linkedLibrary("capstone")]
        ),
        // Differential test against Zydis and Capstone, round trip, fuzzer: make decoder-diff, make fuzz.
        .executableTarget(
            name: "decoder-diff", dependencies: ["Engine", "COracles", "KdbtClient"], path: "Tests/DecoderDiff",
            exclude: ["COracles", "disagreements.md"], swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // make bench (decoder part): kdbt vs Zydis vs Capstone over vmlinux .text.
        .executableTarget(name: "DecoderBench", dependencies: ["Engine", "COracles", "KdbtClient"],
                          path: "Benchmarks/DecoderBench", swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "RoundTripTests", dependencies: ["Engine", "KdbtClient"]),
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Protocol"]),
        .testTarget(name: "TranslatorTests", dependencies: ["Engine", "UserHost", "CWorkloads", "CxxWorkloads", "CKdbtSys"]),
        .testTarget(name: "UserModeTests"),
        .testTarget(name: "CLITests", dependencies: ["kdbt-cli", "KdbtClient", "Protocol"]),
        // Findings rendering (KASAN text, JSON lines, SARIF) from encoded records.
        .testTarget(name: "ReportTests", dependencies: ["KdbtClient", "Protocol"]),
        .testTarget(name: "SymbolizerTests", dependencies: ["Symbolizer", "KdbtClient"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "DecoderTests", dependencies: ["Engine", "CZydis", "KdbtClient"],
                    exclude: ["printer-differences.md"]),
    ]
)

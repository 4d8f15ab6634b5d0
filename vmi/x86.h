/*
 * Internal: the x86-64 paging facts every module shares (vmi's walker, the kernel
 * finder, the patch areas, the planner). One definition each.
 */
#ifndef HVP_VMI_X86_H
#define HVP_VMI_X86_H

#define HVP_PAGE_SHIFT  12
#define HVP_PAGE_SIZE   (1ull << HVP_PAGE_SHIFT)
#define HVP_SIZE_2M     (1ull << 21)
#define HVP_SIZE_1G     (1ull << 30)

/* Page-table entry bits (PS: a 2 MiB PDE or 1 GiB PDPTE maps a large page). */
#define HVP_PTE_P       (1ull << 0)
#define HVP_PTE_RW      (1ull << 1)
#define HVP_PTE_US      (1ull << 2)
#define HVP_PTE_PS      (1ull << 7)
#define HVP_PTE_G       (1ull << 8)
#define HVP_PTE_NX      (1ull << 63)
/* The address field of a PDE that maps a 2 MiB page (MAXPHYADDR 52). */
#define HVP_PDE_2M_ADDR_MASK 0x000fffffffe00000ull

/*
 * __START_KERNEL_map: the kernel image lies in [START, END) (KERNEL_IMAGE_SIZE, 1 GiB),
 * in 2 MiB slots; MODULES_VADDR follows.
 */
#define HVP_KERNEL_MAP_START 0xffffffff80000000ull
#define HVP_KERNEL_MAP_END   0xffffffffc0000000ull

#endif

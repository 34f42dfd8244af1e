// SPDX-License-Identifier: GPL-2.0
/*
 * labsplat: make a running kernel print one kind of report on its console, so the lab's
 * console parser is tested against what real kernels print (tests/golden/capture.py).
 * Test-only: loading it breaks the kernel on purpose.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/delay.h>
#include <linux/preempt.h>
#include <linux/string.h>
#include <linux/bug.h>

static char *kind = "warn";
module_param(kind, charp, 0444);
MODULE_PARM_DESC(kind, "warn | bug | null | gpf | softlockup | rcustall");

static void spin_without_preemption(unsigned int seconds)
{
	preempt_disable();
	mdelay(seconds * 1000);
	preempt_enable();
}

static int __init labsplat_init(void)
{
	pr_info("labsplat: triggering %s\n", kind);
	if (!strcmp(kind, "warn")) {
		WARN(1, "labsplat: warning requested\n");
	} else if (!strcmp(kind, "bug")) {
		BUG();
	} else if (!strcmp(kind, "null")) {
		*(volatile int *)NULL = 1;
	} else if (!strcmp(kind, "gpf")) {
		*(volatile int *)0xdead000000000000UL = 1;
	} else if (!strcmp(kind, "softlockup") || !strcmp(kind, "rcustall")) {
		spin_without_preemption(12);
	} else {
		return -EINVAL;
	}
	return 0;
}

static void __exit labsplat_exit(void)
{
}

module_init(labsplat_init);
module_exit(labsplat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bpf-kernel-lab: trigger kernel reports for golden console logs");

/* sifive-test.c: the "sifive,test0" finisher: a 32-bit write of 0x5555
 * powers the machine off (0x3333 too, reporting a failure code in the upper
 * half), 0x7777 resets it. Linux reaches it as syscon-poweroff/-reboot. */
#include "riscv-devices.h"

typedef struct {
    FerryDevice dev;
    const FerryPlatform *platform;
} SifiveTest;

static uint64_t
test_read(FerryDevice *dev, uint64_t offset, unsigned size)
{
    return 0;
}

static void
test_write(FerryDevice *dev, uint64_t offset, uint64_t value, unsigned size)
{
    SifiveTest *t = (SifiveTest *) dev;

    if (offset != 0)
        return;
    switch (value & 0xFFFF) {
    case FERRY_SIFIVE_TEST_POWEROFF:
        ferry_platform_request(t->platform, FERRY_PLATFORM_POWEROFF, "syscon power-off");
        break;
    case FERRY_SIFIVE_TEST_FAIL:
        g_message("The guest reported failure code %u at power-off", (guint) ((value >> 16) & 0xFFFF));
        ferry_platform_request(t->platform, FERRY_PLATFORM_POWEROFF, "syscon power-off (failure)");
        break;
    case FERRY_SIFIVE_TEST_RESET:
        ferry_platform_request(t->platform, FERRY_PLATFORM_RESET, "syscon reboot");
        break;
    }
}

static const FerryDeviceOps test_ops = {
    .name = "sifive-test",
    .read = test_read,
    .write = test_write,
};

FerryDevice *
ferry_sifive_test_new(const FerryPlatform *platform)
{
    SifiveTest *t = g_new0(SifiveTest, 1);
    ferry_device_init(&t->dev, &test_ops, "sifive-test");
    t->platform = platform;
    return &t->dev;
}
